"""``reflip`` command line: ``reflip audit`` runs the property suite on reflip or on another
implementation and prints a Markdown table of the claims."""
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

        text, survived = kill_report(profile=args.profile)
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
    args = parser.parse_args(argv)
    if args.command == "audit":
        return _audit(args)
    return 2  # pragma: no cover  (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
