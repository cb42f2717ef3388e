"""Every registry primitive timed the same way: plain function, forward with residuals, and
forward + backward, against a memory copy of the input measured in the same run.

    python benchmarks/bench_registry.py [--backend numpy|cupy] [--primitive NAME ...]

Primitives whose record has no ``bench_inputs`` are listed as not benchmarked. The
primitive-specific benchmarks (bench_<module>.py) compare against the obvious alternative.
"""
from __future__ import annotations

import argparse

import numpy as np

from bench_groupsort import backend, timeit

import reflip
from reflip._registry import REGISTRY


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    parser.add_argument("--primitive", nargs="+", default=sorted(REGISTRY))
    args = parser.parse_args()
    xp, sync, device = backend(args.backend)
    print(f"reflip {reflip.__version__} on {args.backend} ({device}), float32\n")
    print("| primitive | input | copy ms | fun ms | fwd ms | fwd+bwd ms | fun / copy | fwd+bwd / fwd |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.primitive:
        rec = REGISTRY[name]
        factory = rec.bench_factory()
        if factory is None:
            print(f"| {name} | (no bench_inputs in its registry record) | | | | | | |")
            continue
        for label, x, params in factory(xp, "float32"):
            dst = xp.empty_like(x)
            t_copy = timeit(lambda: xp.copyto(dst, x) if xp is np else dst.__setitem__(..., x), sync)
            t_fun = timeit(lambda: rec.fun(x, **params), sync)
            t_fwd = timeit(lambda: rec.fwd(x, **params), sync)
            y, res = rec.fwd(x, **params)
            y_bar = xp.ones_like(y)
            t_fb = timeit(lambda: rec.bwd(rec.fwd(x, **params)[1], y_bar), sync)
            print(f"| {name} | {label} | {1e3 * t_copy:.2f} | {1e3 * t_fun:.2f} | {1e3 * t_fwd:.2f} | "
                  f"{1e3 * t_fb:.2f} | {t_fun / t_copy:.1f} | {t_fb / t_fwd:.2f} |", flush=True)


if __name__ == "__main__":
    main()
