"""CI-sized smoke test that mutation testing still works (issue 20, item 4): a handful of
mutants of ``reflip/norms.py``, each killed by the tests that docs/mutation.md selects for it.

Why hand-listed mutations rather than mutmut itself: mutmut is a development tool (the
``mutation`` extra), not a test dependency; its command line, output and on-disk format have
changed between major versions, and a full ``mutmut run`` rewrites every function of the module
into a trampoline and collects coverage first (minutes, not seconds). The mutations below are of
the kinds mutmut generates (a keyword argument set to ``None``, a number changed, a comparison
negated, a sign flipped, a message string wrapped in ``XX``); several of them survived the
module's own tests before tests/test_oracles.py was written (docs/mutation.md). Each is applied
to a copy of the package in a temporary folder and the selected tests run there in a
subprocess, so the checkout and the running interpreter never see a mutant.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = "reflip/norms.py"
TESTS = ["tests/test_norms.py", "tests/test_oracles.py"]

#: (what mutmut would call it, original text, mutated text). Each original occurs once.
MUTANTS = [
    ("norm_p_inf: reduction over every axis", "ord=q, axis=-1), axis=-1)", "ord=q, axis=-1), axis=None)"),
    ("norm_p_inf: row norm along +1", "ord=q, axis=-1)", "ord=q, axis=+1)"),
    ("norm_p_inf: dual of inf is 2", "q = 1.0 if p == math.inf", "q = 2.0 if p == math.inf"),
    ("check_p: condition negated", "if p not in _DUAL:", "if p in _DUAL:"),
    ("check_p: message string", '"{name} must be 1, 2 or inf', '"XX{name} must be 1, 2 or inf'),
    ("_as_matrix: comparison negated", "if w.ndim == 1 else w", "if w.ndim != 1 else w"),
]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A copy of the package and of the selected tests; returns a function that writes a
    variant of the module and runs the tests, returning pytest's exit code."""
    root = tmp_path_factory.mktemp("mutation_smoke")
    shutil.copytree(ROOT / "reflip", root / "reflip", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "tests").mkdir()
    for name in ["__init__.py", "conftest.py", *[Path(t).name for t in TESTS]]:
        shutil.copy2(ROOT / "tests" / name, root / "tests" / name)
    source = (ROOT / MODULE).read_text()
    # The sandbox's folder comes first on sys.path (python -m puts the working directory there).
    env = {**os.environ, "CI": "true", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)

    def run(text):
        (root / MODULE).write_text(text)
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *TESTS]
        return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)

    run.root, run.source, run.env = root, source, env
    return run


def test_the_sandbox_imports_its_own_copy(sandbox):
    out = subprocess.run([sys.executable, "-c", "import reflip.norms; print(reflip.norms.__file__)"],
                         cwd=sandbox.root, env=sandbox.env, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).resolve() == (sandbox.root / MODULE).resolve()


def test_unmutated_module_passes(sandbox):
    """Without this, a 'killed' mutant could be a broken sandbox."""
    result = sandbox(sandbox.source)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("name, original, mutated", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_is_killed(sandbox, name, original, mutated):
    assert sandbox.source.count(original) == 1, (
        f"{MODULE} changed: {original!r} no longer occurs once; update MUTANTS in this file")
    result = sandbox(sandbox.source.replace(original, mutated))
    # 1: tests failed (killed). 2-5 would be a usage or collection error, not a kill.
    assert result.returncode == 1, f"mutant {name!r} survived or broke the run:\n{result.stdout[-3000:]}"


def test_mutation_tool_selects_existing_files():
    """tools/mutation.py names, per module, files to mutate and tests to run: a moved or renamed
    file would make mutmut mutate or run nothing for that module without saying so."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("mutation_tool", root / "tools" / "mutation.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for name, (sources, tests) in tool.MODULES.items():
        for pattern in sources:
            assert list(root.glob(pattern)), f"{name}: no file matches {pattern}"
        for test in tests:
            assert (root / test).is_file(), f"{name}: {test} does not exist"
