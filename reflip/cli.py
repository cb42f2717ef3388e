"""``reflip`` command line: ``reflip audit`` runs the property suite and prints a claim table."""
from __future__ import annotations

import argparse
import platform
import sys

from ._registry import REGISTRY
from .testing.backends import BACKEND_NAMES, DTYPES, available_backends

__all__ = ["main"]


def _format_figures(figures):
    return ", ".join(f"{k}={v:.3g}" for k, v in sorted(figures.items())) or "-"


def audit(args) -> int:
    from hypothesis import settings

    from .audit import claims_for, run_claim
    from .audit.engine import PROFILES

    names = args.primitive or sorted(REGISTRY)
    unknown = sorted(set(names) - set(REGISTRY))
    if unknown:
        print(f"reflip audit: unknown primitive(s) {unknown}; registered: {sorted(REGISTRY)}", file=sys.stderr)
        return 2
    backends = available_backends(args.backend)
    missing = sorted(set(args.backend) - {b.name for b in backends})
    if missing:
        print(f"reflip audit: backend(s) not available here: {missing}", file=sys.stderr)
        return 2
    profile = settings(max_examples=PROFILES[args.profile], derandomize=args.profile == "quick",
                       database=None, deadline=None)

    rows, failures = [], []
    for name in names:
        for claim in claims_for(name):
            for backend in backends:
                if not claim.applies_to(backend):
                    continue
                for dtype in args.dtype:
                    result = run_claim(claim, REGISTRY[name], backend, dtype, settings=profile)
                    rows.append(result)
                    if not result.passed:
                        failures.append(result)
                    if args.verbose:
                        print(f"{'pass' if result.passed else 'FAIL'} {claim.id} {backend.name} {dtype}",
                              file=sys.stderr)

    lines = [
        f"reflip audit: {len(rows)} checks, {len(rows) - len(failures)} passed, {len(failures)} failed "
        f"(profile {args.profile}: {PROFILES[args.profile]} cases each; Python {platform.python_version()})",
        "",
        "| label | claim | backend | dtype | result | cases | worst measured figures |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.claim.label} | {r.claim.id}: {r.claim.statement} | {r.backend} | {r.dtype} | "
                     f"{'pass' if r.passed else '**FAIL**'} | {r.examples} | {_format_figures(r.figures)} |")
    for r in failures:
        lines += ["", f"FAILED {r.claim.id} on {r.backend} {r.dtype} [{r.claim.label}]:", r.error]
    text = "\n".join(lines)
    print(text)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="reflip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("audit", help="check the paper's claims on reflip's primitives")
    p.add_argument("--profile", choices=["quick", "thorough"], default="quick",
                   help="quick: 25 derandomized cases per claim; thorough: 500 random cases")
    p.add_argument("--backend", nargs="+", choices=BACKEND_NAMES, default=["numpy"],
                   help="array backends to run on (default: numpy)")
    p.add_argument("--dtype", nargs="+", choices=DTYPES, default=list(DTYPES))
    p.add_argument("--primitive", nargs="+", help=f"primitives to audit (default: all of {sorted(REGISTRY)})")
    p.add_argument("--report", help="also write the table to this Markdown file")
    p.add_argument("-v", "--verbose", action="store_true", help="print each check as it finishes")
    args = parser.parse_args(argv)
    if args.command == "audit":
        return audit(args)
    return 2  # pragma: no cover  (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
