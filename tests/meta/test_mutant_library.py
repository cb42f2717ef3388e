"""The whole mutant library through the audit, as a user's library would go: every mutant must
be killed by the claims expected to catch it, and the mutants planting a known porting trap
must be told its cause. Each mutant is audited once (``audit_mutant`` caches the report) and
every test below reads that report. That reflip itself passes the same claims is
tests/audit/test_claims.py's job (the same claims, NumPy, float64)."""
import importlib

import pytest

from reflip.testing.mutants import ADAPTER_MUTANTS, MODULES, all_mutants, audit_mutant, kill_report

pytestmark = pytest.mark.meta

MUTANTS = all_mutants()
EXPECTED = {name: claims for module in MODULES for name, claims in importlib.import_module(module).EXPECTED.items()}

# The traps of ports of the paper's code, and what the failure message must say about each.
HINTS = {
    "num_groups_for_group_size": "did you pass the number of groups?",
    "maxes_then_mins_undeclared": "'maxes_then_mins' layout",
    "half_split_undeclared": "'half_split_max_min' layout",
    "l1_sphere": "projects onto the l1 SPHERE",
    "sign_zero_is_one": "projects onto the l1 SPHERE",
    "detached_as_exact": "treats the threshold theta as a constant",
    "detached_late_iterations": "from step 4 on detached",
    "step_size_convergence": "a stopping test on the step size is met near zero or tiny singular values",
    "tie_cotangent_twice": "every tied entry received the sum of their cotangents",
    "tie_both_to_first": "several cotangents reached one entry",
    "stale_u": "a stale u",
    "sqrt_mn_scaling": "scaling='sqrt_mn' instead of 'frobenius'",
    "pinf_primal_norm": "bounds the DUAL norm",
    "row_scale_every_row": "rows inside the ball were scaled UP",
    "descending": "DESCENDING",
    "axis_ignored": "ignores `axis`",
    "bwd_forward_permutation": "forward permutation instead of its inverse",
    "muon_newton_schulz": "singular values above 1: the layer is not 1-Lipschitz; certificates computed from it "
                          "are invalid",
}


def _failed(name):
    return {r.claim.id for r in audit_mutant(name).results if r.status == "fail"}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_killed(name):
    """[GS-1] [GS-4] [GS-5] [GS-7] [GS-9] [BJ-3] [BJ-6] [BJ-7] [BJ-8] [PR-3] [PR-5] [PR-7] [PR-10]
    [PR-11]: the audit of each mutant fails the claims expected to catch it, and names the
    cause of each porting trap."""
    failed = _failed(name)
    assert failed, f"mutant {name} survived the audit:\n{audit_mutant(name).to_markdown()}"
    missing = set(EXPECTED.get(name, [])) - failed
    assert not missing, f"mutant {name} passed {sorted(missing)}: the suite has no teeth there"
    if name in HINTS:
        text = audit_mutant(name).to_markdown()
        assert HINTS[name] in text, text


def test_library_covers_every_primitive_and_trap():
    """At least 15 mutants, every primitive of the paper broken at least once, every mutant
    with the claims expected to catch it, every trap with its message."""
    assert len(MUTANTS) >= 15
    assert {primitive for primitive, _ in MUTANTS.values()} >= {
        "group_sort", "bjorck", "linf_project", "pinf_project", "row_scale", "spectral_normalize"}
    assert set(MUTANTS) == set(EXPECTED) | set(ADAPTER_MUTANTS)
    assert set(HINTS) <= set(MUTANTS)


def test_kill_report_counts():
    text, survived = kill_report()
    assert survived == []
    assert f"{len(MUTANTS)} of {len(MUTANTS)} killed" in text
