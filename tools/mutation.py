"""Run mutmut on one core module of reflip with that module's own test selection.

Usage (from the repository root, in the venv with ``pip install -e .[mutation]``)::

    python tools/mutation.py --list
    nice -n 19 python tools/mutation.py norms [--jobs 2] [--workdir DIR] [--resume]
    python tools/mutation.py norms --summary      # counts of an earlier run, no new run
    python tools/mutation.py norms --recheck 30   # re-run 30 timed-out mutants without mutmut's limits

Why a script and a scratch copy. mutmut 3 mutates the files in place of a ``mutants/`` folder
beside ``pyproject.toml`` and reads one ``[tool.mutmut]`` table. Running it in the shared
checkout would write that folder among other people's files, and one table cannot give each
module its own tests. So each run copies the working tree (tracked and untracked, unignored
files) to ``DIR/<module>`` (default ``/tmp/reflip-mutation``), replaces the copy's
``[tool.mutmut]`` table with the module's selection below, and runs ``mutmut run`` there with
``CI=true`` and ``REFLIP_MUTATION=1`` (the derandomized hypothesis profile without shrinking:
a mutant's verdict does not depend on the run, and a failing example fails at once instead of
being shrunk past mutmut's time limit). The table in ``pyproject.toml`` itself is the
whole-core run (every module below, the union of their tests): hours on 2 cores.

The tests of a module are the files that check it against an independent oracle; mutmut then
runs, for each mutant, only those of them that call the mutated function. Counts come from
mutmut's ``.meta`` files with mutmut's own exit-code table (docs/mutation.md has the results).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module name -> (files mutated, tests run). Only the tests that exercise a module directly:
#: the whole suite per mutant would not fit in a few hours on 2 cores.
_OWN = ["tests/test_oracles.py", "tests/test_survivors.py"]  # this suite's oracle and kill tests
MODULES = {
    "norms": (["reflip/norms.py"], ["tests/test_norms.py", *_OWN]),
    "layouts": (["reflip/layouts.py"], ["tests/test_layouts.py", *_OWN]),
    "groupsort": (["reflip/groupsort.py"], ["tests/test_groupsort.py", *_OWN]),
    "projections": (["reflip/projections.py"], ["tests/test_projections.py", *_OWN]),
    "spectral": (["reflip/spectral.py"], ["tests/test_spectral.py", *_OWN]),
    "bjorck": (["reflip/bjorck.py"], ["tests/test_bjorck.py", *_OWN]),
    "polar": (["reflip/polar.py"], ["tests/test_polar.py", *_OWN]),
    "fast": (["reflip/_fast/numpy_*.py"], ["tests/test_fast.py", "tests/test_fast_bjorck.py", *_OWN]),
    "nn": (["reflip/nn/*.py"], ["tests/nn/test_layers.py", "tests/nn/test_lipschitz.py", "tests/nn/test_certify.py",
                               "tests/nn/test_backprop.py", "tests/nn/test_train.py", "tests/nn/test_inputs.py",
                               *_OWN]),
    "universality": (["reflip/universality/*.py"], ["tests/test_universality.py",
                                                    "tests/test_universality_constructions.py", *_OWN]),
}

#: Tests that cannot run under mutmut, per module, deselected there: they assert that a warning
#: points at the test's own line (``stacklevel``), and mutmut's trampoline adds a frame between
#: the test and the mutated function. Their mutants (the stacklevel numbers) are judged by reading
#: (docs/mutation.md).
DESELECTED = {
    "bjorck": ["tests/test_bjorck.py::test_not_converged_warns_without_tol",
               "tests/test_bjorck.py::test_the_warning_is_shown_once_per_call_site",
               "tests/test_bjorck.py::test_the_implicit_derivatives_warning_points_at_the_caller"],
}

#: mutmut's exit-code table (mutmut.stats.status_by_exit_code), folded into the four columns of
#: the issue's table; anything else (suspicious, segfault, no tests, not checked) is its own.
_FOLD = {"killed": "killed", "caught by type check": "killed", "survived": "survived",
         "timeout": "timeout"}


def _deselect(module):
    return [arg for test in DESELECTED.get(module, []) for arg in ("--deselect", test)]


def _selection(module):
    """The module's tests as pytest arguments, deselections included."""
    return [*MODULES[module][1], *_deselect(module)]


def _mutmut_table(module, root):
    files, tests = MODULES[module]
    tests = [t for t in tests if (root / t).exists()]  # a new test file may not exist yet
    deselect = _deselect(module)
    lines = [
        "[tool.mutmut]",
        'source_paths = ["reflip"]',
        f"only_mutate = {json.dumps(files)}",
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        f"pytest_add_cli_args = {json.dumps(['-q', '-p', 'no:cacheprovider', *deselect])}",
        'also_copy = ["proofs", "docs", "README.md", "CONTRIBUTING.md"]',
        "",
    ]
    return "\n".join(lines)


def _replace_table(text, table):
    """``text`` with its ``[tool.mutmut]`` table (header to next header) replaced by ``table``."""
    pattern = re.compile(r"^\[tool\.mutmut\]\n(?:(?!\[).*\n|\n)*", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _: table + "\n", text, count=1)
    return text.rstrip("\n") + "\n\n" + table


def _copy_tree(dest):
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def summarize(workdir):
    """Counts per status and the names of the surviving mutants, from mutmut's .meta files."""
    sys.path.insert(0, str(workdir))
    from mutmut.stats import status_by_exit_code  # noqa: PLC0415 (mutmut is a dev-only tool)

    counts, survivors = Counter(), []
    for meta in sorted((workdir / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            status = status_by_exit_code[code]
            counts[_FOLD.get(status, status)] += 1
            if status == "survived":
                survivors.append(name)
    counts["generated"] = sum(counts.values())
    return counts, survivors


def recheck(workdir, module, sample, limit, whole=False, reverse=False):
    """Re-run timed-out (and never checked) mutants one at a time, outside mutmut's time limits.

    mutmut's wall-clock limit is a multiple of the tests' measured time, so a busy machine turns
    caught mutants into timeouts. Each mutant here runs the tests that mutmut maps to its function
    (``pytest -x``, the mutants' copy, ``MUTANT_UNDER_TEST`` set as mutmut sets it) under a plain
    ``limit`` in seconds: failed = killed, passed = survived, still running = timeout. ``whole``
    runs the module's whole selection instead (tests written after the run are in no map). ``sample``
    (a count, taken in a fixed order) bounds the cost; 0 re-runs all. The verdicts are printed,
    not written back into mutmut's files."""
    sys.path.insert(0, str(workdir))
    from mutmut.stats import status_by_exit_code  # noqa: PLC0415

    stats = json.loads((workdir / "mutants" / "mutmut-stats.json").read_text())
    tests_by_function = stats["tests_by_mangled_function_name"]
    names = []
    for meta in sorted((workdir / "mutants").rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text()).get("exit_code_by_key", {}).items():
            if code is None or status_by_exit_code[code] == "timeout":
                names.append(name)
    chosen = names if not sample else names[::max(1, len(names) // sample)][:sample]
    if reverse:  # a second process from the other end halves the wall time on 2 cores
        chosen = chosen[::-1]
    env = dict(os.environ, CI="true", REFLIP_MUTATION="1")
    verdicts = Counter()
    for name in chosen:
        tests = (_selection(module) if whole
                 else sorted(tests_by_function.get(name.rsplit("__mutmut_", 1)[0], [])))
        if not tests:
            verdicts["no tests"] += 1
            print("no tests:", name, flush=True)
            continue
        try:
            rc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                cwd=workdir / "mutants", env=dict(env, MUTANT_UNDER_TEST=name),
                                capture_output=True, timeout=limit).returncode
            verdict = "survived" if rc == 0 else "killed" if rc == 1 else f"error (pytest exit {rc})"
        except subprocess.TimeoutExpired:
            verdict = "timeout"
        verdicts[verdict] += 1
        print(f"{verdict}: {name}", flush=True)
    print(json.dumps({"module": module, "timed out or unchecked": len(names), "rechecked": len(chosen),
                      **verdicts}, sort_keys=True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module", nargs="?", choices=sorted(MODULES))
    parser.add_argument("--list", action="store_true", help="print the modules and their tests")
    parser.add_argument("--jobs", type=int, default=2, help="mutmut's --max-children (default 2)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/reflip-mutation"))
    parser.add_argument("--resume", action="store_true", help="keep an earlier copy and its results")
    parser.add_argument("--summary", action="store_true", help="only print an earlier run's counts")
    parser.add_argument("--recheck", type=int, metavar="N", default=None,
                        help="re-run N timed-out mutants of an earlier run without mutmut's limits (0: all)")
    parser.add_argument("--recheck-limit", type=float, default=300.0, help="seconds per mutant (default 300)")
    parser.add_argument("--reverse", action="store_true", help="recheck from the last mutant backwards")
    parser.add_argument("--whole-selection", action="store_true",
                        help="recheck with the module's whole test selection (tests newer than the run)")
    args = parser.parse_args(argv)
    if args.list or args.module is None:
        for name, (files, tests) in MODULES.items():
            skipped = "".join(f" -{t}" for t in DESELECTED.get(name, []))
            print(f"{name}: {' '.join(files)} <- {' '.join(tests)}{skipped}")
        return 0
    try:
        import mutmut  # noqa: F401, PLC0415
    except ImportError:
        parser.error(f"mutmut is not installed for {sys.executable}: pip install -e '.[mutation]'")
    work = args.workdir / args.module
    if args.recheck is not None:
        recheck(work, args.module, args.recheck, args.recheck_limit, args.whole_selection, args.reverse)
        return 0
    if not args.summary:
        if work.exists() and not args.resume:
            shutil.rmtree(work)
        if not work.exists():
            work.mkdir(parents=True)
            _copy_tree(work)
            toml = work / "pyproject.toml"
            toml.write_text(_replace_table(toml.read_text(), _mutmut_table(args.module, work)))
        # One BLAS thread: mutmut forks a worker per mutant from a process whose BLAS thread pool is
        # already running, and a forked child that then calls a threaded BLAS product (matrices of
        # a few hundred rows) waits forever on the pool's lock: a "timeout" that is not the mutant's.
        env = dict(os.environ, CI="true", REFLIP_MUTATION="1",  # tests/conftest.py: no shrinking
                   OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs)],
                       cwd=work, env=env, check=False)
    counts, survivors = summarize(work)
    print(json.dumps({"module": args.module, **counts}, sort_keys=True))
    for name in survivors:
        print("survived:", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
