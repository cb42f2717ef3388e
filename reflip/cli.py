"""``reflip`` command line: ``reflip audit`` runs the property suite on reflip or on another
implementation and prints a Markdown table of the claims; ``reflip reproduce`` re-runs the
paper's experiments and writes their results folder."""
from __future__ import annotations

import argparse
import sys

from ._registry import REGISTRY
from .testing.backends import BACKEND_NAMES, DTYPES, available_backends

__all__ = ["main"]


def _audit(args) -> int:
    from .audit import check_implementation, load_impl
    from .audit.api import read_xfails

    if args.mutants:
        from .testing.mutants import kill_report

        text, survived = kill_report(profile="mutants" if args.profile == "quick" else args.profile)
        print(text)
        return 1 if survived else 0
    adapter = None
    if args.impl:
        try:
            adapter = load_impl(args.impl)
        except (ImportError, AttributeError, ValueError) as exc:
            print(f"reflip audit: cannot load --impl {args.impl!r}: {exc}", file=sys.stderr)
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
        report = check_implementation(
            adapter, primitives=args.primitive, backends=backends, dtypes=args.dtype, profile=args.profile,
            xfails=xfails, timeout=args.timeout, checks=args.check,
            progress=(lambda r: print(f"{r.status} {r.claim.id} {r.backend} {r.dtype}", file=sys.stderr))
            if args.verbose else None)
    except ValueError as exc:
        print(f"reflip audit: {exc}", file=sys.stderr)
        return 2
    text = report.to_markdown()
    print(text)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0 if report.ok else 1


def _reproduce(args, argv) -> int:
    from .reproduce import run_experiments

    try:
        folders = run_experiments(args.experiment, mode=args.mode, seed=args.seed, backend=args.backend,
                                  out=args.out, dtype=args.dtype, threads=args.threads, tasks=args.tasks,
                                  progress=not args.no_progress, command=["reflip", *argv])
    except (ValueError, RuntimeError) as exc:
        print(f"reflip reproduce: {exc}", file=sys.stderr)
        return 2
    for folder in folders:
        print(f"{folder}: results.json, summary.md and plots")
    return 0


def _reproduce_parser(sub):
    p = sub.add_parser("reproduce", help="re-run the paper's experiments (tables, plots, JSON)",
                       description="Re-run the paper's experiments: Wasserstein-1 estimation against known "
                                   "and exactly computed distances, certified robustness on scikit-learn's "
                                   "8x8 digits, gradient-norm preservation. Writes OUT/EXPERIMENT/results.json, "
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reflip-results", help="results folder (default: reflip-results)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="training precision (evaluations always run in float64); default float32")
    p.add_argument("--threads", type=int, default=None,
                   help="host BLAS threads during the run (default: 1 with numpy outside --full, else the "
                        "library's own)")
    p.add_argument("--tasks", nargs="+", help="Wasserstein tasks to run (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="reflip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("audit", help="check the paper's claims on reflip or on your implementation",
                       description="Check the paper's claims. Exit code 0: every check passed (or was an "
                                   "expected failure); 1: a check failed; 2: usage error.")
    p.add_argument("--impl", help="'package.module:adapter' (see reflip.audit.adapter); default: reflip itself "
                                   "on every available backend")
    p.add_argument("--profile", choices=["quick", "thorough"], default="quick",
                   help="quick: 25 derandomized cases per check; thorough: 500 random cases")
    p.add_argument("--backend", nargs="+", choices=BACKEND_NAMES,
                   help="array backends (default: all available for reflip, numpy for --impl)")
    p.add_argument("--dtype", nargs="+", choices=DTYPES, default=list(DTYPES))
    p.add_argument("--primitive", nargs="+", help=f"primitives to audit (default: all of {sorted(REGISTRY)})")
    p.add_argument("--check", nargs="+", help="run only these check ids (e.g. group_sort.lipschitz)")
    p.add_argument("--xfails", help="expected-failures file: one check id per line, its reason in # lines above")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per check (default 120)")
    p.add_argument("--report", help="also write the table to this Markdown file")
    p.add_argument("--mutants", action="store_true",
                   help="run the suite on reflip's library of broken implementations and report the kill rate")
    p.add_argument("-v", "--verbose", action="store_true", help="print each check as it finishes")
    _reproduce_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "audit":
        return _audit(args)
    if args.command == "reproduce":
        return _reproduce(args, sys.argv[1:] if argv is None else list(argv))
    return 2  # pragma: no cover  (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
