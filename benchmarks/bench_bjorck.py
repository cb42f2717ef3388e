"""Björck benchmarks: forward and forward+backward (unrolled, checkpointed, implicit) against the
BLAS GEMM rate measured in the same run, and orthonormality error versus iterations per order.

    python benchmarks/bench_bjorck.py [--shapes 256x256 1024x1024] [--large] [--huge]
                                      [--backend numpy cupy] [--n-iter 25] [--orders 1 2]

Timings are float32. One Björck step on a tall ``M x N`` matrix is ``2 + (p - 1) N / M``
"GEMM units" (one unit = the ``M x N x N`` product ``A @ R``, timed on its own as the
reference): the Gram matrix, ``A @ P(X)`` and ``p - 1`` products of ``N x N`` matrices [BJ-1].
The unrolled backward is ``3 + 3 (p - 1) N / M`` units per step, checkpointing adds almost two
forward passes (:func:`checkpoint_units`) [BJ-8]. "% of GEMM rate" is model units x GEMM time / measured time: 100% means
the iteration runs as fast as the bare products it is made of. ``--large`` adds
4096 x 1024 (minutes on a 2-core machine), ``--huge`` 4096 x 4096 (an hour there). Prints
Markdown tables.
"""
from __future__ import annotations

import argparse
import math
import platform
import time
import warnings

import numpy as np

import reflip
from reflip.testing.bench_inputs import well_conditioned


def timeit(fn, sync=lambda: None, repeat=5, budget=2.0):
    """Best wall time of ``fn`` over up to ``repeat`` runs after one warm-up, stopping once
    ``budget`` seconds are spent (at least two timed runs). The minimum, not the median: on a
    shared machine other jobs only ever make a run slower."""
    fn()
    sync()
    times = []
    spent = 0.0
    while len(times) < 2 or (len(times) < repeat and spent < budget):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return min(times)


def backend(name):
    if name == "numpy":
        return np, (lambda: None), platform.processor() or platform.machine()
    import cupy

    sync = cupy.cuda.Device().synchronize
    return cupy, sync, cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def fwd_units(m, n, order, k):
    return k * (2 + (order - 1) * n / m) + 1  # + the residual's Gram matrix


def bwd_units(m, n, order, k):
    return k * (3 + 3 * (order - 1) * n / m)


def checkpoint_units(m, n, order, k):
    """The recomputation of ``checkpoint=True`` [BJ-8]: pass one runs up to the last of the
    ``ceil(K / L)`` checkpoints (``L = ceil(sqrt(K))``), pass two recomputes every Gram matrix
    and every step except the one that ends a segment."""
    seg = math.isqrt(max(k - 1, 0)) + 1
    first = ((k - 1) // seg) * seg if k else 0
    n_seg = -(-k // seg)
    return first * (2 + (order - 1) * n / m) + k + (k - n_seg) * (1 + (order - 1) * n / m)


def run_timings(shapes, backends, n_iter, orders):
    rows = []
    for name in backends:
        xp, sync, device = backend(name)
        for m, n in shapes:
            rng = np.random.default_rng(0)
            w = xp.asarray(rng.standard_normal((m, n), dtype=np.float32))
            g = xp.asarray(rng.standard_normal((m, n), dtype=np.float32))
            # The implicit rule differentiates the polar factor, which is singular where w is: a
            # random square Gaussian matrix is close to singular (its smallest singular value is
            # ~1/n of the largest; at 4096 the margin test of _polar_eig refuses it in float32),
            # so square shapes time it on U diag(s) V^T with s spread over [0.1, 1] (converged
            # in 25 steps). Rectangular Gaussian matrices are well conditioned (s_min ~
            # sqrt(M) - sqrt(N)) and keep the timing input.
            w_well = well_conditioned(xp, m, "float32") if m == n else w
            tall_m, tall_n = max(m, n), min(m, n)
            a = xp.asarray(rng.standard_normal((tall_m, tall_n), dtype=np.float32))
            r = xp.asarray(rng.standard_normal((tall_n, tall_n), dtype=np.float32))
            t_gemm = timeit(lambda: a @ r, sync)
            shape_rows = []
            for order in orders:
                kw = dict(order=order, n_iter=n_iter)
                _, info = reflip.bjorck(w, **kw, return_info=True)
                fu, bu = fwd_units(tall_m, tall_n, order, n_iter), bwd_units(tall_m, tall_n, order, n_iter)

                def fb(**extra):
                    y, res = reflip.bjorck_fwd(w, **kw, **extra)
                    return reflip.bjorck_bwd(res, g)

                def fb_implicit():
                    y, res = reflip.bjorck_fwd(w_well, **kw, backward="implicit")
                    return reflip.bjorck_bwd(res, g)

                cases = [
                    ("forward (bjorck)", lambda: reflip.bjorck(w, **kw), fu - 1),
                    ("fwd+bwd unrolled", lambda: fb(), fu + bu),
                    ("fwd+bwd unrolled, checkpoint", lambda: fb(checkpoint=True),
                     fu + bu + checkpoint_units(tall_m, tall_n, order, n_iter)),
                    ("fwd+bwd implicit (well-conditioned input)", fb_implicit, None),
                ]
                for label, fn, units in cases:
                    with warnings.catch_warnings():
                        # Timing only: the implicit rule warns that the Gaussian test matrices
                        # have not converged in n_iter steps (see the residual column).
                        warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
                        t = timeit(fn, sync)
                    # The reference is re-timed next to every case and the best time kept.
                    t_gemm = min(t_gemm, timeit(lambda: a @ r, sync))
                    shape_rows.append(dict(backend=name, device=device, shape=f"{m}x{n}", order=order,
                                           residual=info.max_residual, what=label, t=t, units=units))
            for row in shape_rows:
                row.update(ms=1e3 * row["t"], gemm_ms=1e3 * t_gemm,
                           gflops=2 * tall_m * tall_n**2 / t_gemm / 1e9, measured_units=row["t"] / t_gemm,
                           efficiency=None if row["units"] is None else row["units"] * t_gemm / row["t"])
                print(_row(row), flush=True)
            rows += shape_rows
    return rows


HEADER = ("| backend | shape | GEMM ms (GFLOP/s) | order | residual after n_iter | what | ms | "
          "GEMM units (model) | GEMM units (measured) | % of GEMM rate |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def _row(r):
    units = "-" if r["units"] is None else f"{r['units']:.0f}"
    eff = "-" if r["efficiency"] is None else f"{100 * r['efficiency']:.0f}%"
    return (f"| {r['backend']} | {r['shape']} | {r['gemm_ms']:.2f} ({r['gflops']:.0f}) | {r['order']} | "
            f"{r['residual']:.1e} | {r['what']} | {r['ms']:.1f} | {units} | {r['measured_units']:.1f} | {eff} |")


def convergence_table(max_iter=40, tol=1e-6):
    """Iterations and GEMM units each order needs to bring ||Y^T Y - I||_F below ``tol``
    (float64, Frobenius scaling): order ``p`` costs ``p + 1`` units per step on a square
    matrix."""
    rng = np.random.default_rng(1)
    mats = {
        "256x256 Gaussian": rng.standard_normal((256, 256)),
        "1024x256 Gaussian": rng.standard_normal((1024, 256)),
        "256x256, s in [0.1, 1]": (np.linalg.qr(rng.standard_normal((256, 256)))[0]
                                   * np.linspace(0.1, 1, 256)) @ np.linalg.qr(rng.standard_normal((256, 256)))[0],
    }
    lines = ["| matrix | order | residual after k = 1, 2, 4, 8, 16 | steps to 1e-6 | GEMM units to 1e-6 |",
             "|---|---|---|---|---|"]
    for label, w in mats.items():
        m, n = w.shape
        for order in (1, 2, 3, 4):
            # One step at a time: the scaled A_0, then unscaled steps (inside the basin already).
            a, info = reflip.bjorck(w, n_iter=0, return_info=True)
            residuals, reached = [info.max_residual], None
            for k in range(1, max_iter + 1):
                a, info = reflip.bjorck(a, order=order, n_iter=1, scaling="none", return_info=True)
                residuals.append(info.max_residual)
                if reached is None and info.max_residual <= tol:
                    reached = k
            units = None if reached is None else reached * (2 + (order - 1) * n / m)
            lines.append(f"| {label} | {order} | " + ", ".join(f"{residuals[k]:.1e}" for k in (1, 2, 4, 8, 16))
                         + f" | {reached if reached is not None else '>' + str(max_iter)} | "
                         + (f"{units:.0f}" if units is not None else "-") + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["256x256", "1024x1024"])
    parser.add_argument("--large", action="store_true", help="add 4096x1024 (minutes on 2 cores)")
    parser.add_argument("--huge", action="store_true", help="add 4096x4096 (an hour on 2 cores)")
    parser.add_argument("--backend", nargs="+", default=["numpy"], choices=["numpy", "cupy"])
    parser.add_argument("--n-iter", type=int, default=25)
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-convergence", action="store_true")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes]
    shapes += [(4096, 1024)] if args.large else []
    shapes += [(4096, 4096)] if args.huge else []
    print(f"reflip {reflip.__version__}, numpy {np.__version__}, float32, n_iter={args.n_iter}, "
          f"device {backend(args.backend[0])[2]}\n")
    print(HEADER)
    run_timings(shapes, args.backend, args.n_iter, args.orders)
    if not args.skip_convergence:
        print("\nOrthonormality error ||Y^T Y - I||_F versus iterations (float64, Frobenius scaling)\n")
        print(convergence_table())


if __name__ == "__main__":
    main()
