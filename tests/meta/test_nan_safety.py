"""Meta-tests [AU-1]: a NaN never passes a check. For every claim of every primitive, reflip with
its forward, its VJP or its JVP replaced by one returning NaN (of the right shape and dtype)
must fail every claim that reads that result, with a :class:`ClaimFailure` (a verdict, not a
crash of the checking code). ``NaN > tol`` is False: a check written ``if err > tol: fail``
passes such an implementation, which is what this catches."""
import dataclasses

import pytest
from hypothesis import Phase, settings

from reflip._backend import get_namespace
from reflip._registry import REGISTRY
from reflip.audit import run_claim
from reflip.audit.engine import CLAIMS, claims_for
from reflip.testing.backends import available_backends

pytestmark = pytest.mark.meta

NUMPY = available_backends(("numpy",))[0]
# A NaN is caught on the first case that reaches the comparison; no shrinking is needed to
# tell pass from fail.
FAST = settings(max_examples=4, derandomize=True, deadline=None, database=None,
                phases=[Phase.explicit, Phase.generate])

# (claim, role) pairs that read the NaN result and still rightly pass, with the reason.
EXEMPT = {
    ("no_mutation", "fwd"): "checks only that the inputs are unchanged",
    ("no_mutation", "bwd"): "checks only that the inputs are unchanged",
    ("no_mutation", "jvp"): "checks only that the inputs are unchanged",
    ("fun_is_fwd", "fwd"): "compares fun with fwd, which return the same NaN bit for bit",
    ("isometry", "fwd"): "reads only the residuals of the forward (the VJP is checked)",
    ("isometry_ties", "fwd"): "reads only the residuals of the forward (the VJP is checked)",
    ("constant_uv", "fwd"): "reads only the residuals of the forward (the VJP is checked)",
}


def _nan_like(a):
    xp = get_namespace(a)
    return xp.full(tuple(a.shape), xp.nan, dtype=a.dtype)


def nan_mutant(record, role, calls):
    """``record`` with its ``role`` ("fwd", "bwd" or "jvp") returning NaN; each call of the
    broken function appends to ``calls``."""
    if role == "fwd":
        def fwd(x, *args, **params):
            calls.append(role)
            y, residuals = record.fwd(x, *args, **params)
            return _nan_like(y), residuals

        def fun(x, *args, **params):
            calls.append(role)
            return _nan_like(record.fun(x, *args, **params))

        return dataclasses.replace(record, fwd=fwd, fun=fun)
    if role == "bwd":
        def bwd(residuals, y_bar):
            calls.append(role)
            return _nan_like(record.bwd(residuals, y_bar))

        return dataclasses.replace(record, bwd=bwd)

    def jvp(residuals, x_dot):
        calls.append(role)
        return _nan_like(record.jvp(residuals, x_dot))

    return dataclasses.replace(record, jvp=jvp)


# Claims that evaluate none of the functions, with the reason.
NO_READ = {
    "refuses": "checks that the construction refuses data that are not 1-Lipschitz; evaluates nothing",
}

# The paper's primitives (proofs/groupsort.md, bjorck.md, projections.md, universality.md); a
# module that registers another primitive adds it here once its checks compare with `exceeds`.
PRIMITIVES = ("group_sort", "bjorck", "linf_project", "pinf_project", "row_scale", "spectral_normalize",
              "max_min_network")
ALL = [c for name in PRIMITIVES for c in claims_for(name)]


@pytest.mark.parametrize("claim", ALL, ids=[c.id for c in ALL])
def test_nan_is_caught(claim):
    """Every claim fails on each NaN-returning function it reads (or is listed in EXEMPT)."""
    record = REGISTRY[claim.primitive]
    short = claim.id.split(".", 1)[1]
    read = 0
    derivatives = "bwd" in claim.needs or claim.reference  # which may call bwd and jvp
    for role in ("fwd", "bwd", "jvp") if derivatives else ("fwd",):
        if role == "jvp" and record.jvp is None:
            continue
        calls = []
        result = run_claim(claim, nan_mutant(record, role, calls), NUMPY, "float64", settings=FAST)
        if not calls:
            continue  # this claim never calls that function
        read += 1
        if (short, role) in EXEMPT:
            continue
        assert result.status == "fail", f"{claim.id} passed with a NaN {role}: NaN slips through a comparison"
        assert result.error.startswith("ClaimFailure"), f"{claim.id} with a NaN {role} crashed: {result.error}"
    assert read or short in NO_READ, f"{claim.id} called none of fwd, bwd, jvp in {FAST.max_examples} cases"


def test_exemptions_are_used():
    """Each exemption names an existing check (a renamed check must not keep a stale pass)."""
    names = {c.split(".", 1)[1] for c in CLAIMS}
    assert {short for short, _ in EXEMPT} | set(NO_READ) <= names
