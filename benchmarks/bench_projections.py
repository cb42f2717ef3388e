"""Benchmark of the l_inf projection [PR-3]: every row of a square float32 matrix onto the l1
ball, forward and forward + backward, in rows per second, next to a plain sort of the same data
measured in the same run (the projection is one sort plus O(n) work per row).

    python benchmarks/bench_projections.py [--backend numpy cupy] [--size N] [--quick]

Default size 4096 (``--quick``: 256); radius 1, so that every row (l1 norm ~0.8 n) is outside
the ball and goes through the threshold computation, the costly case. The three operations are
timed in alternating rounds.
"""
from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the `benchmarks` package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import math

import reflip
from benchmarks.common import add_backend_argument, backends, heading, measure, ms, ms_range, ratio, table, timeit


def section(be, quick=False, size=None):
    n = size or (256 if quick else 4096)
    w, g = be.normal((n, n)), be.normal((n, n), 1)

    def forward_backward():
        _, res = reflip.linf_project_fwd(w, radius=1.0)
        return reflip.linf_project_bwd(res, g)

    t = measure({"sort": lambda: be.xp.sort(w, axis=-1), "fwd": lambda: reflip.linf_project(w, radius=1.0),
                 "fwd+bwd": forward_backward}, be, repeat=7)
    t_sort, t_fwd, t_fb = t["sort"].best, t["fwd"].best, t["fwd+bwd"].best
    print(f"### l_inf projection, {n}x{n} float32, {be.name} ({be.device})\n")
    table(["operation", "ms", "rows/s", "time / sort", "ms: best-worst round"],
          [["sort of the rows", ms(t_sort), f"{n / t_sort:,.0f}", "1.00", ms_range(t["sort"])],
           ["linf_project forward", ms(t_fwd), f"{n / t_fwd:,.0f}", ratio(t_fwd, t_sort), ms_range(t["fwd"])],
           ["linf_project forward + backward", ms(t_fb), f"{n / t_fb:,.0f}", ratio(t_fb, t_sort),
            ms_range(t["fwd+bwd"])]])


def scaling_rows(be, quick=False):
    """Rows of the scaling table (benchmarks/run.py): time / (entries log2 n) should stay flat."""
    rows = []
    for n in (64, 128, 256) if quick else (256, 512, 1024, 2048, 4096):
        w = be.normal((64 if quick else 512, n))
        t = timeit(lambda: reflip.linf_project(w), be)
        per = 1e9 * t / (w.size * math.log2(n))
        rows.append(["linf_project", f"{w.shape[0]}x{n}", ms(t), f"{per:.3f} ns / (entry log2 n)"])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backend_argument(parser, default=None)
    parser.add_argument("--size", type=int, default=None, help="rows and columns (default 4096)")
    parser.add_argument("--quick", action="store_true", help="256 x 256 (a dry run)")
    args = parser.parse_args(argv)
    for be in backends(args.backend, torch=False):
        heading(be)
        section(be, args.quick, args.size)


if __name__ == "__main__":
    main()
