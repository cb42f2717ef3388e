"""Benchmark of the l_inf projection [PR-3]: every row of a 4096 x 4096 float32 matrix onto
the l1 ball, forward and forward + backward, in rows per second, next to a plain sort of the
same data measured in the same run (the projection is one sort plus O(n) work per row).

Standalone: ``python benchmarks/bench_projections.py [--size N] [--repeat R]`` prints a
Markdown table. Runs on NumPy, and on CuPy when it imports and sees a GPU (timed with
``cupyx.profiler.benchmark``, which synchronizes the device).
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import reflip


def _numpy_timer(fn, repeat):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _cupy_timer(fn, repeat):
    from cupyx.profiler import benchmark

    result = benchmark(fn, n_repeat=repeat, n_warmup=1)
    return float(np.min(result.gpu_times))


def _backends():
    out = [("numpy", np, _numpy_timer)]
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            out.append(("cupy", cupy, _cupy_timer))
    except Exception:  # CuPy absent or no device: NumPy only
        pass
    return out


def run(size=4096, repeat=5, seed=0):
    rows = []
    w_host = np.random.default_rng(seed).standard_normal((size, size)).astype(np.float32)
    g_host = np.random.default_rng(seed + 1).standard_normal((size, size)).astype(np.float32)
    # Radius 1: every row (l1 norm ~ 0.8 n) is outside the ball, the costly case.
    radius = 1.0
    for name, lib, timer in _backends():
        w, g = lib.asarray(w_host), lib.asarray(g_host)

        def sort():
            return lib.sort(w, axis=-1)

        def forward():
            return reflip.linf_project(w, radius=radius)

        def forward_backward():
            _, res = reflip.linf_project_fwd(w, radius=radius)
            return reflip.linf_project_bwd(res, g)

        t_sort = timer(sort, repeat)
        for label, fn in [("np.sort / cupy.sort of the rows", sort), ("linf_project forward", forward),
                          ("linf_project forward + backward", forward_backward)]:
            t = t_sort if fn is sort else timer(fn, repeat)
            rows.append((name, label, t, size / t, t / t_sort))
    return rows


def table(rows, size):
    lines = [f"linf projection of a {size} x {size} float32 matrix (radius 1: every row outside); "
             f"best of the repeats; NumPy {np.__version__}, Python {platform.python_version()}, "
             f"{platform.machine()}",
             "",
             "| backend | operation | time (ms) | rows / s | time / sort |",
             "|---|---|---:|---:|---:|"]
    for backend, label, t, rate, ratio in rows:
        lines.append(f"| {backend} | {label} | {1e3 * t:.1f} | {rate:,.0f} | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(table(run(args.size, args.repeat), args.size))


if __name__ == "__main__":
    main()
