"""Björck benchmarks: forward and forward + backward (unrolled, checkpointed, implicit) against
the GEMM rate measured in the same run, per order; the orthonormality error against the
iterations; peak memory of the backward passes.

    python benchmarks/bench_bjorck.py [--backend numpy cupy] [--shapes 256x256 1024x1024] [--large]
                                      [--huge] [--n-iter 25] [--orders 1 2] [--skip-convergence]
                                      [--quick]

Timings are float32. One Björck step on a tall ``M x N`` matrix is ``2 + (p - 1) N / M`` "GEMM
units" (one unit = the ``M x N x N`` product ``A @ R``, timed on its own as the reference): the
Gram matrix, ``A @ P(X)`` and ``p - 1`` products of ``N x N`` matrices [BJ-1]. The unrolled
backward is ``3 + 3 (p - 1) N / M`` units per step; checkpointing adds almost two forward
passes (:func:`checkpoint_units`) [BJ-8]. "% of GEMM rate" = model units x GEMM time / measured
time: 100% means the iteration runs as fast as the bare products it is made of. ``--large``
adds 4096 x 1024 (minutes on a 2-core machine), ``--huge`` 4096 x 4096 (an hour there);
``--quick`` times 64 x 64 and 128 x 64 only.

benchmarks/run.py uses :func:`section` (order 1 at one size: forward, backward modes, the
TF32-mixed precision on CuPy, a batch of small matrices, the plain PyTorch loop) and
:func:`memory_section`.
"""
from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the `benchmarks` package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import importlib
import math
import tracemalloc
import warnings

import numpy as np

import reflip
from benchmarks.common import add_backend_argument, backends, heading, ms, parse_shapes, pct, table, timeit
from reflip.testing.bench_inputs import well_conditioned


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


def gemm_time(be, m, n, dtype=np.float32, batch=()):
    a, b = be.normal((*batch, m, n), 2, dtype), be.normal((*batch, n, n), 3, dtype)
    return timeit(lambda: a @ b, be)


def torch_bjorck(torch, w, n_iter):
    """The usual PyTorch loop (order 1, Frobenius scaling)."""
    a = w / torch.linalg.matrix_norm(w, keepdim=True)
    for _ in range(n_iter):
        a = 1.5 * a - 0.5 * a @ (a.mT @ a)
    return a


# ----------------------------------------------------------------------------------------------
# Per shape and order (the standalone table)


def orders_section(be, shapes, n_iter=25, orders=(1, 2)):
    """Forward, unrolled, checkpointed and implicit backward of every order at every shape,
    in GEMM units."""
    rows = []
    for m, n in shapes:
        rng = np.random.default_rng(0)
        w = be.asarray(rng.standard_normal((m, n), dtype=np.float32))
        g = be.asarray(rng.standard_normal((m, n), dtype=np.float32))
        # The implicit rule differentiates the polar factor, which is singular where w is: a
        # random square Gaussian matrix is close to singular (its smallest singular value is
        # ~1/n of the largest; at 4096 the margin test of the implicit rule refuses it in
        # float32), so square shapes time it on U diag(s) V^T with s spread over [0.1, 1].
        # Rectangular Gaussian matrices are well conditioned (s_min ~ sqrt(M) - sqrt(N)).
        w_well = well_conditioned(be.xp, m, "float32") if m == n else w
        tall_m, tall_n = max(m, n), min(m, n)
        a = be.asarray(rng.standard_normal((tall_m, tall_n), dtype=np.float32))
        r = be.asarray(rng.standard_normal((tall_n, tall_n), dtype=np.float32))
        t_gemm = timeit(lambda: a @ r, be)
        shape_rows = []
        for order in orders:
            kw = dict(order=order, n_iter=n_iter)
            _, info = reflip.bjorck(w, **kw, return_info=True)
            fu, bu = fwd_units(tall_m, tall_n, order, n_iter), bwd_units(tall_m, tall_n, order, n_iter)

            def fb(source=w, **extra):
                _, res = reflip.bjorck_fwd(source, **kw, **extra)
                return reflip.bjorck_bwd(res, g)

            cases = [
                ("forward (bjorck)", lambda: reflip.bjorck(w, **kw), fu - 1),
                ("fwd+bwd unrolled", fb, fu + bu),
                ("fwd+bwd unrolled, checkpoint", lambda: fb(checkpoint=True),
                 fu + bu + checkpoint_units(tall_m, tall_n, order, n_iter)),
                ("fwd+bwd implicit (well-conditioned input)", lambda: fb(w_well, backward="implicit"), None),
            ]
            for label, fn, units in cases:
                with warnings.catch_warnings():
                    # Timing only: the implicit rule warns that the Gaussian test matrices have
                    # not converged in n_iter steps (see the residual column).
                    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
                    t = timeit(fn, be, budget=2.0)
                # The reference is re-timed next to every case and the best time kept.
                t_gemm = min(t_gemm, timeit(lambda: a @ r, be))
                shape_rows.append([f"{m}x{n}", order, f"{info.max_residual:.1e}", label, t, units])
        for shape, order, residual, label, t, units in shape_rows:
            rows.append([be.name, shape, f"{1e3 * t_gemm:.2f} ({2 * tall_m * tall_n ** 2 / t_gemm / 1e9:.0f})", order,
                         residual, label, f"{1e3 * t:.1f}", "-" if units is None else f"{units:.0f}",
                         f"{t / t_gemm:.1f}", "-" if units is None else pct(units * t_gemm, t)])
    print(f"### Björck, float32, n_iter={n_iter}, {be.name} ({be.device})\n")
    table(["backend", "shape", "GEMM ms (GFLOP/s)", "order", "residual after n_iter", "what", "ms",
           "GEMM units (model)", "GEMM units (measured)", "% of GEMM rate"], rows)


def convergence_section(max_iter=40, tol=1e-6, n=256):
    """Iterations and GEMM units each order needs to bring ||Y^T Y - I||_F below ``tol``
    (float64, Frobenius scaling, NumPy): order ``p`` costs ``p + 1`` units per step on a square
    matrix."""
    rng = np.random.default_rng(1)
    mats = {
        f"{n}x{n} Gaussian": rng.standard_normal((n, n)),
        f"{4 * n}x{n} Gaussian": rng.standard_normal((4 * n, n)),
        f"{n}x{n}, s in [0.1, 1]": (np.linalg.qr(rng.standard_normal((n, n)))[0]
                                    * np.linspace(0.1, 1, n)) @ np.linalg.qr(rng.standard_normal((n, n)))[0],
    }
    rows = []
    for label, w in mats.items():
        m, n_ = w.shape
        for order in (1, 2, 3, 4):
            # One step at a time: the scaled A_0, then unscaled steps (inside the basin already).
            a, info = reflip.bjorck(w, n_iter=0, return_info=True)
            residuals, reached = [info.max_residual], None
            for k in range(1, max_iter + 1):
                a, info = reflip.bjorck(a, order=order, n_iter=1, scaling="none", return_info=True)
                residuals.append(info.max_residual)
                if reached is None and info.max_residual <= tol:
                    reached = k
            units = None if reached is None else reached * (2 + (order - 1) * n_ / m)
            rows.append([label, order, ", ".join(f"{residuals[k]:.1e}" for k in (1, 2, 4, 8, 16)),
                         reached if reached is not None else f">{max_iter}", "-" if units is None else f"{units:.0f}"])
    print("Orthonormality error ||Y^T Y - I||_F versus iterations (float64, Frobenius scaling)\n")
    table(["matrix", "order", "residual after k = 1, 2, 4, 8, 16", f"steps to {tol:g}", f"GEMM units to {tol:g}"],
          rows)


# ----------------------------------------------------------------------------------------------
# The sections of benchmarks/run.py


def section(be, quick=False, n_iter=25):
    """Order 1 at one size: forward against the GEMM rate, the backward modes, TF32-mixed
    (CuPy), the plain PyTorch loop; then a batch of small matrices."""
    n = 128 if quick else (4096 if be.gpu else 1024)
    print(f"### Björck, order 1, {n_iter} steps, {n}x{n} float32, {be.name} ({be.device})\n")
    w = well_conditioned(be.xp, n, "float32", lo=0.1)
    g = be.normal((n, n), 5)
    t_gemm = gemm_time(be, n, n)
    units_fwd = 2 * n_iter + 1
    units_bwd = 3 * n_iter
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    print(f"GEMM {n}^3: {ms(t_gemm)} ms = {2 * n ** 3 / t_gemm / 1e12:.2f} TFLOP/s (float32).\n")
    rows = []
    _, info = reflip.bjorck(w, n_iter=n_iter, return_info=True)
    t_fwd = timeit(lambda: reflip.bjorck(w, n_iter=n_iter), be)
    rows.append(["forward (bjorck)", ms(t_fwd), units_fwd, pct(units_fwd * t_gemm, t_fwd), f"{info.max_residual:.1e}",
                 "-"])

    def fb(**kw):
        return lambda: reflip.bjorck_bwd(reflip.bjorck_fwd(w, n_iter=n_iter, **kw)[1], g)

    t_fb = timeit(fb(), be)
    rows.append(["fwd+bwd unrolled", ms(t_fb), units_fwd + units_bwd, pct((units_fwd + units_bwd) * t_gemm, t_fb),
                 "-", f"bwd/fwd {(t_fb - t_fwd) / t_fwd:.2f}"])
    t_ck = timeit(fb(checkpoint=True), be)
    rows.append(["fwd+bwd unrolled, checkpoint", ms(t_ck), "-", "-", "-", f"bwd/fwd {(t_ck - t_fwd) / t_fwd:.2f}"])
    t_imp = timeit(fb(backward="implicit"), be)
    rows.append(["fwd+bwd implicit (well-conditioned input)", ms(t_imp), "-", "-", "-",
                 f"bwd/fwd {(t_imp - t_fwd) / t_fwd:.2f}"])
    if be.gpu:
        rows += _tf32_rows(be, w, n_iter, t_fwd, t_fb, fb)
    if be.torch is not None:
        tw = be.to_torch(w)
        t_t = timeit(lambda: torch_bjorck(be.torch, tw, n_iter), be, torch_sync=True)
        rows.append(["torch loop forward (same steps)", ms(t_t), units_fwd - 1, pct((units_fwd - 1) * t_gemm, t_t), "-",
                     f"reflip/torch {t_fwd / t_t:.2f}"])
    table(["what", "ms", "GEMM units", "% of GEMM rate", "residual", "note"], rows)
    # A batch of small matrices: one batched GEMM per product.
    b, s = (32, 16) if quick else (512, 64)
    wb = well_conditioned(be.xp, s, "float32", batch=(b,))
    t_b = timeit(lambda: reflip.bjorck(wb, n_iter=n_iter), be)
    t_bg = gemm_time(be, s, s, batch=(b,))
    # The same number of batched products issued from a Python loop, nothing else: what the
    # launches alone cost at this size.
    pa, pb = be.normal((b, s, s), 2), be.normal((b, s, s), 3)
    t_loop = timeit(lambda: [pa @ pb for _ in range(units_fwd)], be)
    flops = units_fwd * b * 2 * s ** 3
    table(["batch", "batched GEMM ms", "GEMM GFLOP/s", "bjorck fwd ms", "bjorck GFLOP/s", "% of GEMM rate",
           f"{units_fwd} batched GEMMs in a Python loop, ms"],
          [[f"{b} x {s}x{s}", ms(t_bg), f"{b * 2 * s ** 3 / t_bg / 1e9:.0f}", ms(t_b), f"{flops / t_b / 1e9:.0f}",
            pct(units_fwd * t_bg, t_b), ms(t_loop)]])


def _tf32_rows(be, w, n_iter, t_fwd, t_fb, fb):
    """CuPy: precision="tf32-mixed" with 2, 3 and the default number of float32 polishing
    steps, and every step in TF32 for reference."""
    bj = importlib.import_module("reflip.bjorck")
    default_polish = bj.TF32_POLISH
    rows = []
    for polish in sorted({2, 3, default_polish}):
        bj.TF32_POLISH = polish  # read at every call: the schedule of "tf32-mixed"
        try:
            _, info_m = reflip.bjorck(w, n_iter=n_iter, precision="tf32-mixed", return_info=True)
            t_mix = timeit(lambda: reflip.bjorck(w, n_iter=n_iter, precision="tf32-mixed"), be)
        finally:
            bj.TF32_POLISH = default_polish
        mark = " (default)" if polish == default_polish else ""
        rows.append([f"forward tf32-mixed, last {polish} steps float32{mark}", ms(t_mix), "-", "-",
                     f"{info_m.max_residual:.1e}", f"{t_fwd / t_mix:.2f}x faster than float32"])
    from reflip._fast.cupy_bjorck import tf32_matmul

    with tf32_matmul(w.dtype):
        _, info_t = reflip.bjorck(w, n_iter=n_iter, return_info=True)
    rows.append(["forward, every step TF32 (no polishing; for reference)", "-", "-", "-",
                 f"{info_t.max_residual:.1e}", "-"])
    t_mix_fb = timeit(fb(precision="tf32-mixed"), be)
    rows.append(["fwd+bwd unrolled, tf32-mixed forward", ms(t_mix_fb), "-", "-", "-", f"{t_fb / t_mix_fb:.2f}x faster"])
    return rows


class _CupyPeak:
    """Peak of the CuPy memory-pool allocations made inside the block (inputs excluded)."""

    def __init__(self):
        import cupy

        class Hook(cupy.cuda.MemoryHook):
            name = "reflip_bench_peak"

            def __init__(self):
                super().__init__()
                self.current, self.peak, self.sizes = 0, 0, {}

            def malloc_postprocess(self, **kw):
                self.sizes[kw["mem_ptr"]] = kw["mem_size"]
                self.current += kw["mem_size"]
                self.peak = max(self.peak, self.current)

            def free_postprocess(self, **kw):
                self.current -= self.sizes.pop(kw["mem_ptr"], 0)

        self.hook = Hook()

    def measure(self, fn):
        with self.hook:
            fn()
        return self.hook.peak


def _peak_bytes(be, fn):
    if be.gpu:
        be.xp.get_default_memory_pool().free_all_blocks()
        return _CupyPeak().measure(fn)
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def memory_section(be, quick=False, n_iter=25):
    """Peak memory of forward + backward: iterates stored, checkpointed, implicit."""
    n = 64 if quick else (2048 if be.gpu else 512)
    w = well_conditioned(be.xp, n, "float32")
    g = be.normal((n, n), 1)
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    rows = []
    for label, kw in [("unrolled, iterates stored", {}), ("unrolled, checkpoint=True", {"checkpoint": True}),
                      ("implicit", {"backward": "implicit"})]:
        peak = _peak_bytes(be, lambda: reflip.bjorck_bwd(reflip.bjorck_fwd(w, n_iter=n_iter, **kw)[1], g))
        rows.append([label, f"{peak / 2 ** 20:.1f}", f"{peak / w.nbytes:.1f}"])
    print(f"### Björck forward + backward peak memory, {n}x{n} float32, {n_iter} steps, {be.name}\n")
    table(["backward", "peak MiB (allocated during fwd+bwd)", "in units of w"], rows)


def scaling_rows(be, quick=False):
    """Rows of the scaling table (benchmarks/run.py): time / n^3 should stay flat."""
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    rows = []
    for n in (32, 64, 128) if quick else (256, 512, 1024, 2048, 4096) if be.gpu else (128, 256, 512, 1024):
        w = well_conditioned(be.xp, n, "float32")
        t = timeit(lambda: reflip.bjorck(w), be)
        rows.append(["bjorck order 1, 25 steps", f"{n}x{n}", ms(t), f"{1e12 * t / n ** 3:.3f} ps / n^3"])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backend_argument(parser)
    parser.add_argument("--shapes", nargs="+", default=["256x256", "1024x1024"])
    parser.add_argument("--large", action="store_true", help="add 4096x1024 (minutes on 2 cores)")
    parser.add_argument("--huge", action="store_true", help="add 4096x4096 (an hour on 2 cores)")
    parser.add_argument("--n-iter", type=int, default=25)
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-convergence", action="store_true")
    parser.add_argument("--quick", action="store_true", help="64x64 and 128x64 only, a small convergence table")
    args = parser.parse_args(argv)
    shapes = [(64, 64), (128, 64)] if args.quick else parse_shapes(args.shapes)
    shapes += [(4096, 1024)] if args.large else []
    shapes += [(4096, 4096)] if args.huge else []
    for be in backends(args.backend, torch=False):
        heading(be)
        orders_section(be, shapes, args.n_iter, args.orders)
    if not args.skip_convergence:
        convergence_section(n=32 if args.quick else 256)


if __name__ == "__main__":
    main()
