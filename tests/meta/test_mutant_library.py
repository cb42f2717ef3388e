"""The whole mutant library through the audit, as a user's library would go: every mutant must
be killed, and the convention mutants must be told which convention explains them."""
import pytest

from reflip.testing.mutants import all_mutants, audit_mutant, kill_report

pytestmark = pytest.mark.meta

MUTANTS = all_mutants()

# What the failure message must say for mutants whose cause is a convention.
HINTS = {
    "maxes_then_mins_undeclared": "'maxes_then_mins' layout",
    "half_split_undeclared": "'half_split_max_min' layout",
    "num_groups_for_group_size": "did you pass the number of groups?",
    "descending": "DESCENDING",
    "axis_ignored": "ignores `axis`",
    "bwd_forward_permutation": "forward permutation instead of its inverse",
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_killed(name):
    """[GS-1] [GS-9]: the audit of each mutant fails, with the cause named where it is a
    convention."""
    report = audit_mutant(name)
    assert not report.ok, f"mutant {name} survived the audit"
    if name in HINTS:
        assert HINTS[name] in report.to_markdown(), report.to_markdown()


def test_kill_report_counts():
    text, survived = kill_report()
    assert survived == []
    assert f"{len(MUTANTS)} of {len(MUTANTS)} killed" in text
