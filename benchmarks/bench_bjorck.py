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


# ----------------------------------------------------------------------------------------------
# The fused NumPy path against the core [BJ-11], every method to a tolerance, peak memory by
# method (``--frontier``; issue 17)


def _core_off():
    """Context switching the NumPy fast path of Björck off (the core runs): "before"."""
    import contextlib

    from reflip._fast import numpy_bjorck

    @contextlib.contextmanager
    def ctx(enabled):
        old = numpy_bjorck.ENABLED
        numpy_bjorck.ENABLED = enabled
        try:
            yield
        finally:
            numpy_bjorck.ENABLED = old

    return ctx


def _with(enabled, fn):
    ctx = _core_off()

    def run():
        with ctx(enabled):
            return fn()

    return run


def measure_both(fns, repeat=5, warmup=1):
    """:func:`benchmarks.common.measure` (NumPy: alternating rounds, best and worst) reading two
    clocks: ``{name: (wall Timing, CPU Timing)}``. The CPU time of the process
    (``time.process_time``) is what a single-threaded computation costs whatever else the
    machine runs (a 2-core machine shared by several jobs deschedules it for whole scheduler
    quanta: wall times then spread 2-10x); with several threads it adds up the threads,
    spin-waits included, so there only the wall clock says how the work scales."""
    import time

    from benchmarks.common import Timing

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeat):
        for name in names if r % 2 == 0 else reversed(names):
            w0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    return {k: (Timing(min(wall[k]), max(wall[k]), repeat), Timing(min(cpu[k]), max(cpu[k]), repeat)) for k in fns}


def fused_section(be, n=512, n_iter=25, repeat=5):
    """Order 1, ``n x n`` float32: forward and forward + unrolled backward of the core and of
    the fused path against the GEMM rate, all in alternating rounds with the reference GEMM;
    the elementwise time of one step and one reverse step (the step's time less its GEMMs,
    and the core's passes timed alone); the Gram matrix by SYRK + mirror, by GEMM and by
    NumPy's ``a.mT @ a``."""
    from scipy.linalg import blas

    from reflip._fast import numpy_bjorck as nb

    bj = importlib.import_module("reflip.bjorck")
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    w = well_conditioned(be.xp, n, "float32", lo=0.1)
    g = be.normal((n, n), 5)
    a, r = be.normal((n, n), 2), be.normal((n, n), 3)
    units_fwd, units_bwd = 2 * n_iter + 1, 3 * n_iter

    def fb():
        return reflip.bjorck_bwd(reflip.bjorck_fwd(w, n_iter=n_iter)[1], g)

    fns = {"gemm": lambda: a @ r,
           "forward core": _with(False, lambda: reflip.bjorck(w, n_iter=n_iter)),
           "forward fused": _with(True, lambda: reflip.bjorck(w, n_iter=n_iter)),
           "fwd+bwd core": _with(False, fb), "fwd+bwd fused": _with(True, fb)}
    t = measure_both(fns, repeat=repeat)
    rows = []
    for what in ("forward", "fwd+bwd"):
        units = units_fwd if what == "forward" else units_fwd + units_bwd
        for impl in ("core", "fused"):
            (tw, tc), (gw, gc) = t[f"{what} {impl}"], t["gemm"]
            rows.append([f"{what} ({impl})", f"{ms(tc.best)} ({ms(tc.worst)})", f"{ms(tw.best)} ({ms(tw.worst)})",
                         units, pct(units * gc.best, tc.best), pct(units * gw.best, tw.best)])
    gw, gc = t["gemm"]
    print(f"### Björck order 1, {n_iter} steps, {n}x{n} float32: core against fused (alternating rounds)\n")
    print(f"GEMM {n}^3 in the same rounds: CPU {ms(gc.best)} ms best ({ms(gc.worst)} worst), wall {ms(gw.best)} "
          f"({ms(gw.worst)}); {2 * n ** 3 / gc.best / 1e9:.0f} GFLOP/s per CPU-second.\n")
    table(["what", "CPU ms best (worst)", "wall ms best (worst)", "GEMM units", "% of GEMM rate, CPU",
           "% of GEMM rate, wall"], rows)

    # One step and one reverse step on an iterate halfway through, against their GEMMs.
    coeffs = bj.bjorck_coefficients(1)
    a0 = np.ascontiguousarray(reflip.bjorck(w, n_iter=6, on_nonconvergence="ignore"))
    x0 = a0.T @ a0
    eyes = bj._scaled_eyes(coeffs, a0, np)
    fast = nb.BjorckSteps(nb._blas(), np.float32, coeffs, reuse=True)  # whatever nb.MIN_N says
    fast.step(a0, x0)
    fast.step_vjp(a0, x0, g)  # allocates the workspace the passes below write into
    xbar = fast._scratch("xbar", n)
    parts = {
        "gemm": lambda: a @ r,
        "core step": lambda: bj._step(a0, x0, coeffs, eyes),
        "fused step": lambda: fast.step(a0, x0),
        "core reverse step": lambda: bj._step_vjp(a0, x0, g, coeffs, eyes),
        "fused reverse step": lambda: fast.step_vjp(a0, x0, g),
        # The core's elementwise work, alone: Horner's a_0 I + a_1 X (the whole forward step
        # but its product), and the reverse step's R_0, a_1 r_bar, X_bar + X_bar^T and the sum
        # of the two terms of A_bar.
        "core passes, step": lambda: bj._horner(x0, coeffs, eyes),
        "core passes, reverse": lambda: (bj._horner(x0, coeffs, eyes), coeffs[1] * x0, x0 + x0.T, a0 + g),
        # The fused path's: the copy the order-1 GEMM accumulates into, and the symmetrisation.
        "fused passes, step": lambda: np.copyto(fast._work[("step", 0)], a0),
        "fused passes, reverse": lambda: (np.copyto(fast._work[("vjp", 0)], g),
                                          np.add(xbar.T, xbar, out=fast._scratch("sym", n).T)),
    }
    tp = measure_both(parts, repeat=repeat + 4)
    g1 = tp["gemm"][1]
    prow = []
    for label, key, k in [("step", "step", 1), ("reverse step", "reverse step", 3)]:
        for impl in ("core", "fused"):
            tt = tp[f"{impl} {key}"][1]
            passes = tp[f"{impl} passes, {'step' if k == 1 else 'reverse'}"][1]
            prow.append([f"{label} ({impl})", ms(tt.best), k, ms(tt.best - k * g1.best),
                         f"{ms(passes.best)}-{ms(passes.worst)}", f"{100 * passes.best / g1.best:.1f}%"])
    print(f"Elementwise time per step, {n}x{n} float32, order 1, CPU time (GEMM in the same rounds: "
          f"{ms(g1.best)} ms best, {ms(g1.worst)} worst)\n")
    table(["what", "CPU ms (best)", "GEMMs in it", "step - its GEMMs, ms", "elementwise passes alone, ms (best-worst)",
           "passes / GEMM"], prow)

    # The Gram matrix: SYRK + mirror, GEMM, NumPy (which also calls SYRK for a.T @ a).
    at = a.T
    xf = np.empty((n, n), dtype=np.float32, order="F")
    grams = {"syrk + mirror": lambda: nb._syrk(blas.ssyrk, a, xf),
             "syrk alone": lambda: blas.ssyrk(1.0, at, c=xf, overwrite_c=1),
             "gemm": lambda: nb._gemm(blas.sgemm, 1.0, a.T, a, 0.0, xf),
             "numpy a.T @ a": lambda: a.T @ a}
    tg = measure_both(grams, repeat=repeat + 4)
    table(["Gram matrix " + f"{n}x{n}", "CPU ms best", "CPU ms worst", "wall ms best"],
          [[k, ms(c.best), ms(c.worst), ms(wl.best)] for k, (wl, c) in tg.items()])


def pools_section(be, n=512, calls=4, repeat=6):
    """Two OpenBLAS thread pools: NumPy's and SciPy's wheels each bundle an OpenBLAS, so the
    fused path's GEMMs (SciPy) and every other product of a program (NumPy) run on two pools.
    ``calls`` GEMMs ``n^3`` on NumPy alone, on SciPy alone, and alternating between the two,
    in alternating rounds: with more than one thread the idle pool's workers spin-wait while
    the other pool's want the cores."""
    from scipy.linalg import blas

    a = be.normal((n, n), 2)
    c = np.empty((n, n), dtype=np.float32)
    cf = np.empty((n, n), dtype=np.float32, order="F")

    def np_one():
        np.matmul(a, a, out=c)

    def sp_one():
        blas.sgemm(1.0, a.T, a.T, c=cf, overwrite_c=1)

    from reflip._fast import numpy_bjorck as nb

    fns = {"NumPy only": lambda: [np_one() for _ in range(calls)],
           "SciPy only": lambda: [sp_one() for _ in range(calls)],
           "alternating NumPy / SciPy": lambda: [f() for _ in range(calls // 2) for f in (np_one, sp_one)]}
    cblas = nb._numpy_cblas()
    if cblas is not None:
        def cb_one():
            nb._gemm(cblas.sgemm, 1.0, a, a, 0.0, cf)

        fns["alternating NumPy / NumPy's CBLAS (the fused path)"] = (
            lambda: [f() for _ in range(calls // 2) for f in (np_one, cb_one)])
    t = measure_both(fns, repeat=repeat)
    print(f"### {calls} GEMMs {n}^3 float32 on one BLAS or alternating between NumPy's and SciPy's (alternating "
          f"rounds)\n")
    table(["what", "wall ms best (worst)", "CPU ms best (worst)"],
          [[k, f"{ms(w.best)} ({ms(w.worst)})", f"{ms(c_.best)} ({ms(c_.worst)})"] for k, (w, c_) in t.items()])


def _spread_matrix(n, s_min, seed=0):
    """A square float64 matrix whose Frobenius-scaled singular values run geometrically from
    ``s_min`` up (``||W||_F = 1`` and ``sigma_min = s_min`` exactly): every method starts
    from the same ``A_0`` with the stated smallest singular value."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lo, hi = s_min, 1.0
    for _ in range(200):  # bisection on the top singular value: ||geomspace(s_min, top)|| = 1
        top = (lo + hi) / 2
        lo, hi = (top, hi) if np.linalg.norm(np.geomspace(s_min, top, n)) < 1 else (lo, top)
    s = np.geomspace(s_min, top, n)
    s /= np.linalg.norm(s)
    s[0] = s_min
    return (u * s) @ v.T


def _methods():
    """``name -> (fun(w, tol, dtype), products per step, products of the report)``: Björck
    orders 1-4 and, when reflip has it, the polar iteration of degrees 3 and 5."""
    out = {}
    for p in (1, 2, 3, 4):
        out[f"bjorck order {p}"] = (lambda w, tol, s_min, p=p: reflip.bjorck(w, order=p, n_iter=400, tol=tol,
                                                                           return_info=True), p + 1)
    polar = getattr(reflip, "polar", None)
    if polar is not None:
        for d in (3, 5):
            out[f"polar degree {d}"] = (lambda w, tol, s_min, d=d: polar(w, degree=d, lower=s_min, n_iter=400,
                                                                          tol=tol, return_info=True), (d + 1) // 2)
    return out


def to_tolerance_section(be, n=256, s_mins=(1e-3, 1e-2, 1e-1), repeat=3):
    """Products and wall time each method needs to bring ``||Y^T Y - I||_F`` to ``1e-6``
    (float64) and to the float32 target ``N eps`` (the rounding floor is 0.07-0.3 N eps,
    [BJ-10]), from ``A_0`` with the given smallest singular value (:func:`_spread_matrix`),
    every method timed in the same alternating rounds; with ``tol`` each step reads its
    residual (the Gram matrix the next step uses anyway)."""
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    methods = _methods()
    rows = []
    for dtype, tol in (("float64", 1e-6), ("float32", n * float(np.finfo(np.float32).eps))):
        for s_min in s_mins:
            w = be.asarray(_spread_matrix(n, s_min).astype(dtype))
            fns, info = {}, {}
            for name, (fun, per_step) in methods.items():
                try:
                    _, inf = fun(w, tol, s_min)
                except (ValueError, TypeError) as err:  # e.g. a lower bound the polar iteration lacks
                    rows.append([dtype, f"{tol:.1e}", s_min, name, "-", "-", "-", f"not run: {err}"[:80]])
                    continue
                info[name] = (inf, per_step)
                fns[name] = lambda fun=fun: fun(w, tol, s_min)
            t = measure_both(fns, repeat=repeat)
            for name, (inf, per_step) in info.items():
                reached = inf.max_residual <= tol
                tw, tc = t[name]
                rows.append([dtype, f"{tol:.1e}", s_min, name, inf.n_iter if reached else f">{inf.n_iter}",
                             inf.n_iter * per_step + 1, f"{ms(tc.best)} ({ms(tc.worst)})", ms(tw.best),
                             f"{inf.max_residual:.1e}"])
    print(f"### Steps, products and wall time to a tolerance, {n}x{n}, {be.name} (alternating rounds)\n")
    print("Products: n_iter x products per step + the Gram matrix of the final residual. Time: the whole "
          "call with tol, CPU time of the process (best of the rounds, worst in brackets) and wall time.\n")
    table(["dtype", "tol", "sigma_min of A_0", "method", "steps", "products", "CPU ms best (worst)", "wall ms best",
           "residual"], rows)


def method_memory_section(be, n=512, n_iter=25):
    """Peak memory of forward + backward for every method and backward mode, ``n x n``
    float32 (tracemalloc: NumPy reports its allocations; the inputs are excluded)."""
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    w = well_conditioned(be.xp, n, "float32", lo=0.1)
    g = be.normal((n, n), 1)
    cases = []
    for p in (1, 2, 3, 4):
        cases.append((f"bjorck order {p}, unrolled (fused)", True, reflip.bjorck_fwd, reflip.bjorck_bwd,
                      dict(order=p, n_iter=n_iter)))
    cases += [("bjorck order 1, unrolled (core)", False, reflip.bjorck_fwd, reflip.bjorck_bwd, dict(n_iter=n_iter)),
              ("bjorck order 1, checkpoint (fused)", True, reflip.bjorck_fwd, reflip.bjorck_bwd,
               dict(n_iter=n_iter, checkpoint=True)),
              ("bjorck order 1, implicit", True, reflip.bjorck_fwd, reflip.bjorck_bwd,
               dict(n_iter=n_iter, backward="implicit"))]
    if getattr(reflip, "polar_fwd", None) is not None:
        for d in (3, 5):
            for mode in ("unrolled", "implicit"):
                cases.append((f"polar degree {d}, {mode}", True, reflip.polar_fwd, reflip.polar_bwd,
                              dict(degree=d, lower=0.1, backward=mode)))
    rows = []
    for label, enabled, fwd, bwd, kw in cases:
        peak = _peak_bytes(be, _with(enabled, lambda fwd=fwd, bwd=bwd, kw=kw: bwd(fwd(w, **kw)[1], g)))
        steps = fwd(w, **kw)[1].info.n_iter
        rows.append([label, steps, f"{peak / 2 ** 20:.1f}", f"{peak / w.nbytes:.1f}"])
    print(f"### Peak memory of forward + backward by method, {n}x{n} float32 (s in [0.1, 1]), {be.name}\n")
    table(["method", "steps", "peak MiB", "in units of w"], rows)


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
    parser.add_argument("--frontier", nargs="*", choices=["fused", "tol", "memory", "pools"], default=None,
                        help="issue 17 instead of the tables above (NumPy): the fused path against the core "
                             "and the GEMM rate, every method to a tolerance, peak memory by method "
                             "and the two BLAS thread pools (all four without a value)")
    parser.add_argument("--fused-n", type=int, default=512, help="matrix size of --frontier fused")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads for --frontier (threadpoolctl; default: the library's)")
    args = parser.parse_args(argv)
    if args.frontier is not None:
        return frontier(args)
    shapes = [(64, 64), (128, 64)] if args.quick else parse_shapes(args.shapes)
    shapes += [(4096, 1024)] if args.large else []
    shapes += [(4096, 4096)] if args.huge else []
    for be in backends(args.backend, torch=False):
        heading(be)
        orders_section(be, shapes, args.n_iter, args.orders)
    if not args.skip_convergence:
        convergence_section(n=32 if args.quick else 256)


def frontier(args):
    """``--frontier``: the sections of issue 17 on NumPy, under ``--threads`` BLAS threads."""
    import contextlib

    limit = contextlib.nullcontext()
    if args.threads is not None:
        # SciPy's BLAS is a second OpenBLAS with its own thread pool: load it before limiting,
        # or threadpoolctl (which acts on the libraries loaded at the time) misses it.
        import scipy.linalg.blas  # noqa: F401
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(args.threads)
    which = args.frontier or ["fused", "tol", "memory", "pools"]
    be = backends(["numpy"], torch=False)[0]
    heading(be)
    with limit:
        if "fused" in which:
            fused_section(be, n=128 if args.quick else args.fused_n, n_iter=args.n_iter)
        if "tol" in which:
            to_tolerance_section(be, n=64 if args.quick else 256)
        if "memory" in which:
            method_memory_section(be, n=64 if args.quick else 512, n_iter=args.n_iter)
        if "pools" in which:
            pools_section(be, n=128 if args.quick else 512)


if __name__ == "__main__":
    main()
