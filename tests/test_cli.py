"""`reflip audit` end to end (in-process)."""
import pytest

from reflip.cli import main


def test_audit_prints_a_passing_table(capsys, tmp_path):
    report = tmp_path / "report.md"
    assert main(["audit", "--primitive", "group_sort", "--dtype", "float64", "--backend", "numpy",
                 "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "checks," in out and "fail" not in out.split("\n")[0]
    assert "| group_sort.lipschitz | GS-2 | pass |" in out  # the compact summary: a row per claim
    full = report.read_text()
    assert full.startswith("reflip audit of reflip:")
    assert "| GS-2 | group_sort.lipschitz: 1-Lipschitz" in full  # the full per-case table


def test_audit_rejects_unknown_primitive(capsys):
    assert main(["audit", "--primitive", "no_such_op"]) == 2
    assert "unknown primitive" in capsys.readouterr().err


def test_audit_reports_failures(monkeypatch, capsys, tmp_path):
    """A broken implementation in the registry makes the audit fail with a non-zero code."""
    from reflip import _registry
    from reflip.testing.mutants_groupsort import MUTANTS

    monkeypatch.setitem(_registry.REGISTRY, "group_sort", MUTANTS["descending"])
    report = tmp_path / "report.md"
    assert main(["audit", "--primitive", "group_sort", "--dtype", "float64", "--backend", "numpy",
                 "--report", str(report)]) == 1
    out = capsys.readouterr().out
    assert "| group_sort.sorted_permutation | GS-1 | **FAIL** |" in out
    assert "- group_sort.sorted_permutation [numpy float64]: a group of the output is not sorted" in out
    full = report.read_text()  # the minimal case and its reproduction go to the report
    assert "FAILED group_sort.sorted_permutation" in full
    assert "Minimal failing case:" in full and "x = np.array(" in full


def test_usage_errors():
    with pytest.raises(SystemExit):
        main(["audit", "--profile", "huge"])
