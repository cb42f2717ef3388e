"""`reflip audit` end to end (in-process)."""
import pytest

from reflip.cli import main


def test_audit_prints_a_passing_table(capsys, tmp_path):
    report = tmp_path / "report.md"
    assert main(["audit", "--primitive", "group_sort", "--dtype", "float64", "--backend", "numpy",
                 "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "checks," in out and "fail" not in out.split("\n")[0]
    assert "| GS-2 | group_sort.lipschitz" in out
    assert report.read_text().startswith("reflip audit of reflip:")


def test_audit_rejects_unknown_primitive(capsys):
    assert main(["audit", "--primitive", "no_such_op"]) == 2
    assert "unknown primitive" in capsys.readouterr().err


def test_audit_reports_failures(monkeypatch, capsys):
    """A broken implementation in the registry makes the audit fail with a non-zero code."""
    from reflip import _registry
    from reflip.testing.mutants_groupsort import MUTANTS

    monkeypatch.setitem(_registry.REGISTRY, "group_sort", MUTANTS["descending"])
    assert main(["audit", "--primitive", "group_sort", "--dtype", "float64", "--backend", "numpy"]) == 1
    out = capsys.readouterr().out
    assert "**FAIL**" in out and "FAILED group_sort.sorted_permutation" in out
    assert "Minimal failing case:" in out and "x = np.array(" in out


def test_usage_errors():
    with pytest.raises(SystemExit):
        main(["audit", "--profile", "huge"])
