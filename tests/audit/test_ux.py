"""The audit's terminal view (compact summary, failures listed under it), the full report
(--report), parallel checks (--jobs) and the progress bar."""
import numpy as np

from reflip.audit import check_implementation
from reflip.cli import main


class Descending:
    """GroupSort sorting each group in descending order (fails the sorted-permutation claims)."""

    name = "descending"

    def group_sort(self, x, k, axis=-1):
        xm = np.moveaxis(x, axis, -1)
        y = -np.sort(-xm.reshape(*xm.shape[:-1], -1, k), axis=-1)
        return np.moveaxis(y.reshape(xm.shape), -1, axis)


CHECKS = ["group_sort.sorted_permutation", "group_sort.lipschitz", "group_sort.isometry"]


def test_summary_is_one_row_per_claim_and_one_column_per_backend_dtype():
    report = check_implementation(Descending(), primitives=["group_sort"], checks=CHECKS, shrink=False)
    text = report.to_summary()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| claim |"))
    assert header == "| claim | label | numpy float32 | numpy float64 |"
    rows = [line for line in lines if line.startswith("| group_sort.")]
    assert [r.split(" | ")[0] for r in rows] == [f"| {c}" for c in CHECKS]
    assert "| group_sort.sorted_permutation | GS-1 | **FAIL** | **FAIL** |" in rows
    assert "| group_sort.isometry | GS-5 | n/p | n/p |" in rows
    assert "Failures (2):" in text
    assert "- group_sort.sorted_permutation [numpy float64]: a group of the output is not sorted ascending" in text
    assert "Minimal failing case" not in text  # that is the full report's


def test_jobs_give_the_same_report_as_serial():
    kwargs = dict(primitives=["group_sort"], checks=CHECKS, shrink=False)
    serial = check_implementation(Descending(), **kwargs)
    parallel = check_implementation(Descending(), jobs=2, **kwargs)
    assert [(r.claim.id, r.dtype, r.status, r.error) for r in serial.results] == \
        [(r.claim.id, r.dtype, r.status, r.error) for r in parallel.results]
    assert parallel.to_markdown().splitlines()[2:] == serial.to_markdown().splitlines()[2:]


def test_cli_terminal_summary_and_full_report(tmp_path, capsys):
    report = tmp_path / "full.md"
    code = main(["audit", "--impl", "tests.audit.test_ux:Descending", "--primitive", "group_sort", "--check", *CHECKS,
                 "--dtype", "float64", "--jobs", "2", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 1
    assert "| claim | label | numpy float64 |" in out and "Failures (1):" in out
    assert "worst measured figures" not in out
    full = report.read_text()
    assert "worst measured figures" in full and "Minimal failing case" in full


def test_progress_bar_on_stderr(capsys, monkeypatch):
    """A bar on stderr (tqdm), shown once a run has lasted `delay` seconds (0 here)."""
    import tqdm

    original = tqdm.tqdm.__init__

    def no_delay(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "delay": 0})

    monkeypatch.setattr(tqdm.tqdm, "__init__", no_delay)
    check_implementation(Descending(), primitives=["group_sort"], checks=CHECKS[:1], dtypes=["float64"],
                         shrink=False, progress_bar=True)
    assert "reflip audit (descending)" in capsys.readouterr().err
