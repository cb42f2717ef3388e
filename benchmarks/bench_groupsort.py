"""GroupSort benchmarks: forward and forward+backward against the machine's copy bandwidth and
the obvious NumPy (CuPy) code, all measured in the same run.

    python benchmarks/bench_groupsort.py [--shapes 4096x1024 8192x4096] [--backend numpy cupy]

The bandwidth figure counts one read and one write of the array (the least any out-of-place
GroupSort can move); "x obvious" is reflip's time over the obvious code's time (< 1 is
faster). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import reflip


def timeit(fn, sync=lambda: None, repeat=5, min_time=0.2):
    """Median wall time of ``fn`` over ``repeat`` runs (after one warm-up)."""
    fn()
    sync()
    times = []
    deadline = time.perf_counter() + min_time
    while len(times) < repeat or (time.perf_counter() < deadline and len(times) < 50):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def backend(name):
    if name == "numpy":
        return np, (lambda: None), platform.processor() or platform.machine()
    import cupy

    sync = cupy.cuda.Device().synchronize
    return cupy, sync, cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def obvious(xp, x, k):
    """What a NumPy user writes without reflip."""
    if k == 2:
        out = xp.empty_like(x)
        xp.minimum(x[:, 0::2], x[:, 1::2], out=out[:, 0::2])
        xp.maximum(x[:, 0::2], x[:, 1::2], out=out[:, 1::2])
        return out
    return xp.sort(x.reshape(x.shape[0], -1, k), axis=-1).reshape(x.shape)


def obvious_fwd_bwd(xp, x, k, g):
    """The obvious differentiable version: argsort, gather, scatter the cotangent back."""
    xg = x.reshape(x.shape[0], -1, k)
    perm = xp.argsort(xg, axis=-1)
    y = xp.take_along_axis(xg, perm, axis=-1)
    x_bar = xp.empty_like(xg)
    xp.put_along_axis(x_bar, perm, g.reshape(xg.shape), axis=-1)
    return y, x_bar


def run(shapes, backends, group_sizes):
    rows = []
    for name in backends:
        xp, sync, device = backend(name)
        for m, n in shapes:
            x = xp.asarray(np.random.default_rng(0).standard_normal((m, n), dtype=np.float32))
            g = xp.asarray(np.random.default_rng(1).standard_normal((m, n), dtype=np.float32))
            dst = xp.empty_like(x)
            nbytes = x.size * x.itemsize
            t_copy = timeit(lambda: xp.copyto(dst, x) if xp is np else dst.__setitem__(..., x), sync)
            bandwidth = 2 * nbytes / t_copy
            for k in group_sizes(n):

                def fwd_bwd():
                    y, res = reflip.group_sort_fwd(x, k)
                    return reflip.group_sort_bwd(res, g)

                t_fwd = timeit(lambda: reflip.group_sort(x, k), sync)
                t_fwd_res = timeit(lambda: reflip.group_sort_fwd(x, k), sync)
                t_fb = timeit(fwd_bwd, sync)
                t_obv = timeit(lambda: obvious(xp, x, k), sync)
                t_obv_fb = timeit(lambda: obvious_fwd_bwd(xp, x, k, g), sync)
                rows.append(dict(
                    backend=name, device=device, shape=f"{m}x{n}", k="n" if k == n else k,
                    copy_GBps=bandwidth / 1e9, fwd_ms=1e3 * t_fwd,
                    fwd_bw=(2 * nbytes / t_fwd) / bandwidth, fwd_vs_obvious=t_fwd / t_obv,
                    fwd_res_ms=1e3 * t_fwd_res, fb_ms=1e3 * t_fb, fb_over_fwd=t_fb / t_fwd_res,
                    fb_vs_obvious=t_fb / t_obv_fb,
                ))
                print(_row(rows[-1]), flush=True)
    return rows


HEADER = ("| backend | device | shape | k | copy GB/s | group_sort ms | % of copy bw | x obvious | "
          "fwd (with residuals) ms | fwd+bwd ms | fwd+bwd / fwd | fwd+bwd x obvious |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def _row(r):
    return (f"| {r['backend']} | {r['device']} | {r['shape']} | {r['k']} | {r['copy_GBps']:.1f} | "
            f"{r['fwd_ms']:.2f} | {100 * r['fwd_bw']:.0f}% | {r['fwd_vs_obvious']:.2f} | "
            f"{r['fwd_res_ms']:.2f} | {r['fb_ms']:.2f} | {r['fb_over_fwd']:.2f} | {r['fb_vs_obvious']:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["4096x1024", "8192x4096"])
    parser.add_argument("--backend", nargs="+", default=["numpy"], choices=["numpy", "cupy"])
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes]
    print(f"reflip {reflip.__version__}, numpy {np.__version__}, float32\n")
    print(HEADER)
    run(shapes, args.backend, lambda n: [2, 4, 16, n])


if __name__ == "__main__":
    main()
