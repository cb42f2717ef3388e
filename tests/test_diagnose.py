"""The audit's diagnoses on the situations where they misfired on real libraries (issue 16,
item 4), each reproduced by a port in tests/ports/misfire_ports.py, and the report's figures
and notes."""
import numpy as np
import pytest

from reflip.audit import check_implementation
from reflip.audit.engine import _user_notes

torch = pytest.importorskip("torch")
from tests.ports import misfire_ports as ports  # noqa: E402

F64 = dict(dtypes=["float64"])


def _result(report, check):
    (result,) = [r for r in report.results if r.claim.id == check]
    return result


def test_averaged_tie_gradients_are_named():
    """[GS-5] [GS-7] (c) a half-split MaxMin on torch.maximum / torch.minimum gives each tied entry
    (g1 + g2) / 2: the isometry fails and the failure names the averaging, not only "not a
    permutation"."""
    report = check_implementation(ports.half_split_adapter(), primitives=["group_sort"],
                                  checks=["group_sort.isometry_ties"], **F64)
    result = _result(report, "group_sort.isometry_ties")
    assert result.status == "fail"
    assert "AVERAGE of their cotangents, (g1 + g2) / 2" in result.error
    assert "torch.maximum / torch.minimum" in result.error


def test_failed_check_reports_the_failing_case_figures():
    """(d) the figures column of a failed check shows the failing case's (a norm change > 0),
    not the worst over the cases that passed (0)."""
    report = check_implementation(ports.half_split_adapter(), primitives=["group_sort"],
                                  checks=["group_sort.isometry_ties"], **F64)
    result = _result(report, "group_sort.isometry_ties")
    assert result.failing_figures["norm_change_l2"] > 1e-3
    row = next(line for line in report.to_markdown().splitlines() if "group_sort.isometry_ties:" in line)
    assert "failing case: " in row and "norm_change_l2=0," not in row, row


def test_hypothesis_explanation_is_dropped():
    """(e) hypothesis's "Explanation: lines always run by failing cases" (reflip's harness lines)
    never reaches a report; the reproduction notes do."""
    notes = ["Failing test case: holds(case=...)", "Explanation:",
             "    These lines were always and only run by failing test cases:",
             "        /reflip/audit/groupsort.py:88", "        (and 3 more with settings.verbosity >= verbose)",
             "Minimal case kept"]
    assert _user_notes(notes) == ["Failing test case: holds(case=...)", "Minimal case kept"]
    report = check_implementation(ports.half_split_adapter(), primitives=["group_sort"],
                                  checks=["group_sort.isometry_ties"], **F64)
    assert "Explanation" not in report.to_markdown()
    assert "always and only run" not in report.to_markdown()
