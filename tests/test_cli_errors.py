"""`reflip` usage errors and the audit's exit status (issue 14, item 10): every bad option value,
unloadable --impl, unwritable --out/--report and every audit that checked nothing ends in exit
status 2 and one line on stderr naming the cause, before anything runs; never a traceback, never
a success. In-process through reflip.cli.main; each case takes well under a second."""
import sys
import textwrap

import pytest

import reflip.reproduce
from reflip.audit import check_implementation
from reflip.cli import main
from reflip.reproduce.results import Run, check_out


def run_cli(argv, capsys):
    """``(exit status, stdout, stderr)`` of ``reflip ARGV``, whether main returns the status or
    argparse exits."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code, err, *words):
    """Exit 2, no traceback, and the last line of stderr (argparse prints the usage above it)
    names the cause."""
    assert code == 2, (code, err)
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("reflip"), last
    for word in words:
        assert word in last, (word, last)


@pytest.fixture
def no_training(monkeypatch):
    """The usage errors are found before any experiment starts: running one fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("an experiment started despite the usage error")

    monkeypatch.setattr(reflip.reproduce, "run_experiments", refuse)


# ----------------------------------------------------------------------------------------------
# reflip reproduce


@pytest.mark.parametrize("experiment", ["wasserstein", "all"])
def test_reproduce_out_that_is_a_file(tmp_path, capsys, no_training, experiment):
    """--out naming an existing file (or a path below one) is refused at start-up: it used to
    end in a NotADirectoryError traceback."""
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    for out in (target, target / "sub"):
        code, _, err = run_cli(["reproduce", experiment, "--tiny", "--out", str(out)], capsys)
        assert_usage_error(code, err, "--out", "results.txt", "not a folder")
    assert target.read_text() == "not a folder"


def test_reproduce_out_whose_experiment_folder_is_a_file(tmp_path, capsys, no_training):
    """`all` checks every experiment's folder before the first one trains."""
    (tmp_path / "gnp").write_text("")
    code, _, err = run_cli(["reproduce", "all", "--tiny", "--out", str(tmp_path)], capsys)
    assert_usage_error(code, err, "--out", "gnp", "not a folder")


def test_run_and_check_out_refuse_a_file(tmp_path):
    """The library path: Run (created before training) raises a ValueError naming out."""
    target = tmp_path / "f"
    target.write_text("")
    with pytest.raises(ValueError, match=r"out=.*exists and is not a folder"):
        Run("wasserstein", mode="tiny", seed=0, backend="numpy", out=str(target))
    with pytest.raises(ValueError, match="exists and is not a folder"):
        check_out(target / "deeper" / "still", ("gnp",))
    with pytest.raises(TypeError, match="out must be a path"):
        check_out(3)
    assert check_out(tmp_path / "new", ("gnp",)) == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.parametrize("argv, option", [
    (["--seed", "-1"], "--seed"),
    (["--threads", "0"], "--threads"),
    (["--threads", "-3"], "--threads"),
])
def test_reproduce_bad_option_values(argv, option, capsys, no_training, tmp_path):
    code, _, err = run_cli(["reproduce", "gnp", "--tiny", "--out", str(tmp_path), *argv], capsys)
    assert_usage_error(code, err, option)


# ----------------------------------------------------------------------------------------------
# reflip audit: nothing checked, partial implementations, --impl that cannot be loaded


@pytest.fixture
def impl_dir(tmp_path, monkeypatch):
    """A folder on the import path (as --impl's current directory is) for adapter modules."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("cli_impl_")]:
        del sys.modules[name]


def write_module(folder, name, source):
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return name


@pytest.mark.parametrize("argv", [["--impl", "os:path"], ["--impl", "os:path", "--primitive", "group_sort"]])
def test_audit_of_an_object_with_no_primitive_fails(argv, capsys):
    """`os:path` provides no primitive: every check is "not provided". That audit checked
    nothing and used to exit 0; it exits 2 and says so."""
    code, out, err = run_cli(["audit", *argv], capsys)
    assert code == 2
    assert "not provided" in out  # the table still lists what was not checked
    assert "Traceback" not in err
    assert "nothing was checked" in err and "provides none of the selected primitives" in err


PARTIAL = """
    import numpy as np
    import reflip

    class Partial:
        '''GroupSort only; {descending}'''
        name = "partial"

        def group_sort(self, x, group_size, axis=-1):
            y = reflip.group_sort(np.asarray(x), group_size, axis=axis)
            return -reflip.group_sort(-np.asarray(x), group_size, axis=axis) if {descending} else y
"""
CHECKS = ["--check", "group_sort.lipschitz", "group_sort.sorted_permutation", "bjorck.fd",
          "--primitive", "group_sort", "bjorck", "--dtype", "float64"]


def test_audit_of_a_partial_implementation(impl_dir, capsys):
    """Some primitives provided, some not: the provided ones are checked and decide the exit
    status (0 when they pass, 1 when one fails); the others are reported "not provided"."""
    write_module(impl_dir, "cli_impl_good", PARTIAL.format(descending=False))
    write_module(impl_dir, "cli_impl_bad", PARTIAL.format(descending=True))
    code, out, err = run_cli(["audit", "--impl", "cli_impl_good:Partial", *CHECKS], capsys)
    assert code == 0, err
    assert "| pass |" in out and "not provided" in out and "nothing was checked" not in err
    code, out, _ = run_cli(["audit", "--impl", "cli_impl_bad:Partial", *CHECKS], capsys)
    assert code == 1 and "**FAIL**" in out


def test_report_counts_the_checks_that_ran(impl_dir):
    """The library call: ``checked`` counts what ran, and says why nothing did."""
    nothing = check_implementation(object(), primitives=["group_sort"], dtypes=["float64"])
    assert nothing.checked == 0 and nothing.ok
    assert "provides none of the selected primitives" in nothing.nothing_checked_reason()
    write_module(impl_dir, "cli_impl_lib", PARTIAL.format(descending=False))
    from cli_impl_lib import Partial

    some = check_implementation(Partial(), primitives=["group_sort"], dtypes=["float64"],
                                checks=["group_sort.lipschitz"])
    assert some.checked == 1 and some.nothing_checked_reason() is None


def test_audit_unknown_check_id(capsys):
    """A misspelt --check selected nothing and passed; it is a usage error naming the id."""
    code, _, err = run_cli(["audit", "--primitive", "group_sort", "--check", "group_sort.lipschitzz"], capsys)
    assert_usage_error(code, err, "group_sort.lipschitzz")


def test_audit_impl_that_cannot_be_loaded(impl_dir, capsys):
    """A missing module or attribute, a malformed spec, or a module that raises on import: one
    line naming --impl and the cause, exit 2."""
    write_module(impl_dir, "cli_impl_raises", "raise RuntimeError('broken on import')\n")
    write_module(impl_dir, "cli_impl_ctor", """
        class Adapter:
            def __init__(self):
                raise KeyError('needs a GPU')
    """)
    for spec, cause in (("cli_impl_nosuch:Adapter", "No module named"), ("os:nope", "nope"),
                        ("os", "package.module:adapter"), ("cli_impl_raises:x", "broken on import"),
                        ("cli_impl_ctor:Adapter", "needs a GPU")):
        code, _, err = run_cli(["audit", "--impl", spec, "--primitive", "group_sort"], capsys)
        assert_usage_error(code, err, "--impl", cause)
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv, option", [
    (["--timeout", "-1"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "0"], "--timeout"),
    (["--xfails", "/nonexistent/xfails.txt"], "--xfails"),
    (["--report", "/nonexistent/folder/report.md"], "--report"),
])
def test_audit_bad_option_values(argv, option, capsys):
    code, _, err = run_cli(["audit", "--primitive", "group_sort", *argv], capsys)
    assert_usage_error(code, err, option)


def test_audit_report_path_checked_before_running(tmp_path, capsys, monkeypatch):
    """--report naming a folder is refused before the first check runs (it used to fail with
    IsADirectoryError after the whole audit)."""
    import reflip.audit

    def refuse(*args, **kwargs):
        raise AssertionError("the audit ran despite the usage error")

    monkeypatch.setattr(reflip.audit, "check_implementation", refuse)
    code, _, err = run_cli(["audit", "--report", str(tmp_path)], capsys)
    assert_usage_error(code, err, "--report", "folder")
