"""One-command benchmark of reflip's primitives against their limits and the usual PyTorch way.

    python benchmarks/run.py [--backend numpy cupy] [--quick] [--sections ...]

Sections (all by default), each printing a Markdown table:

``registry``    every registry primitive on its ``bench_inputs`` (primitive, backend, shape,
                dtype, time, fraction of the limit, ratio to the PyTorch way);
``groupsort``   GroupSort k in {2, 4, 8, 16, 32, n} at 8192 x 4096 (GPU) / 4096 x 1024 (CPU):
                forward, forward with residuals, forward + backward, against the copy bandwidth
                measured in the same run and against ``torch.sort`` of the ``(m, n/k, k)`` view
                (with autograd for forward + backward); transposed and strided inputs;
``bjorck``      Björck order 1, 25 steps, float32: forward against the GEMM rate measured in the
                same run, backward / forward, implicit backward (on a well-conditioned input:
                it is singular on a random square matrix), the TF32-mixed mode against float32
                (CuPy), a batch of 512 matrices 64 x 64 (GFLOP/s), and a plain PyTorch loop;
``projection``  l_inf projection [PR-3] of a square matrix: rows/s against a plain sort;
``scaling``     time against size for every primitive family, normalised by the expected growth
                (GroupSort linear, projection n log n per row, Björck cubic);
``memory``      peak memory of Björck's forward + backward with and without checkpointing.

Limits: a memory-bound primitive's is a copy of the bytes it must move (read the input, write
the output, plus the residuals it stores); Björck's is its model count of GEMMs times one GEMM
of the same shape timed in the same run. "% of limit" = limit time / measured time. Times are
the best of several runs; on a GPU, of several launches queued between two synchronisations
(so that the Python overhead of a call, tens of microseconds, overlaps the device work the way
it does in a training loop). ``--quick`` shrinks every size (a dry run, seconds on a CPU).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import math
import platform
import time
import tracemalloc
import warnings

import numpy as np

import reflip
from reflip._registry import REGISTRY
from reflip.testing.bench_inputs import well_conditioned

SECTIONS = ("registry", "groupsort", "bjorck", "projection", "scaling", "memory")


# ----------------------------------------------------------------------------------------------
# Backends and timing


class Backend:
    def __init__(self, name):
        self.name = name
        if name == "numpy":
            self.xp, self.device, self.gpu = np, platform.processor() or platform.machine(), False
            self.sync = lambda: None
        else:
            import cupy

            self.xp, self.gpu = cupy, True
            self.sync = cupy.cuda.Device().synchronize
            self.device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        self.torch, self.tdev = _torch(self.gpu)

    def asarray(self, a):
        return self.xp.asarray(a)

    def to_torch(self, a):
        return None if self.torch is None else self.torch.from_dlpack(a)

    def tsync(self):
        if self.torch is not None and self.gpu:
            self.torch.cuda.synchronize()

    def copy_time(self, x):
        dst = self.xp.empty_like(x)
        return timeit(lambda: self.xp.copyto(dst, x), self)


def _torch(gpu):
    try:
        import torch
    except ImportError:
        return None, None
    if gpu and not torch.cuda.is_available():
        return None, None
    return torch, ("cuda" if gpu else "cpu")


def timeit(fn, be, repeat=5, budget=1.5, torch_sync=False):
    """Best time of one call of ``fn``: after a warm-up, up to ``repeat`` rounds (at least 2,
    stopping after ``budget`` seconds); on a GPU a round queues several calls between two
    synchronisations and counts their mean."""
    sync = be.tsync if torch_sync else be.sync
    fn()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    one = time.perf_counter() - start
    inner = max(1, min(20, int(0.02 / max(one, 1e-7)))) if be.gpu else 1
    best, spent, rounds = math.inf, 0.0, 0
    while rounds < 2 or (rounds < repeat and spent < budget):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        t = time.perf_counter() - start
        best, spent, rounds = min(best, t / inner), spent + t, rounds + 1
    return best


def timeit_pair(fa, fb, be, repeat=9):
    """Best times of ``fa`` and ``fb`` measured in alternating rounds, so that a slow period of
    a shared machine slows both (the comparison the ratio reports)."""
    ta, tb = math.inf, math.inf
    fa(), fb()
    be.sync()
    for i in range(repeat):
        for f, first in ((fa, True), (fb, False)) if i % 2 == 0 else ((fb, False), (fa, True)):
            start = time.perf_counter()
            f()
            be.sync()
            t = time.perf_counter() - start
            ta, tb = (min(ta, t), tb) if first else (ta, min(tb, t))
    return ta, tb


def _ms(t):
    return "-" if t is None else f"{1e3 * t:.3f}" if t < 0.01 else f"{1e3 * t:.2f}" if t < 1 else f"{1e3 * t:.0f}"


def _pct(limit, t):
    return "-" if limit is None or t is None else f"{100 * limit / t:.0f}%"


def _ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}"


def _normal(be, shape, seed=0, dtype=np.float32):
    return be.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype))


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |", flush=True)
    print()


# ----------------------------------------------------------------------------------------------
# GroupSort


def torch_sort_view(t, k):
    """The usual PyTorch GroupSort: sort the ``(m, n/k, k)`` view (values and indices)."""
    return t.torch.sort(t.x.view(t.x.shape[0], -1, k), dim=-1)


def groupsort_section(be, quick):
    m, n = (256, 512) if quick else ((8192, 4096) if be.gpu else (4096, 1024))
    x, g = _normal(be, (m, n)), _normal(be, (m, n), seed=1)
    t_copy = be.copy_time(x)
    print(f"### GroupSort, {m}x{n} float32, {be.name} ({be.device})\n")
    print(f"Copy of the array (read + write): {_ms(t_copy)} ms = "
          f"{2 * x.nbytes / t_copy / 1e9:.0f} GB/s.\n")
    rows = []
    tx = tg = None
    if be.torch is not None:
        tx = be.to_torch(x).clone().requires_grad_(True)
        tg = be.to_torch(g)
    for k in (2, 4, 8, 16, 32, n):

        def fwd_bwd(k=k):
            _, res = reflip.group_sort_fwd(x, k)
            return reflip.group_sort_bwd(res, g)

        view = (m, n // k, k)
        # The obvious array code, same run: the sort of the (m, n/k, k) view (np.sort for
        # k = n is the FullSort target's reference), timed in alternation with group_sort.
        t_fun, t_plain = timeit_pair(lambda: reflip.group_sort(x, k),
                                     lambda: be.xp.sort(x.reshape(view), axis=-1), be)
        t_fwd = timeit(lambda: reflip.group_sort_fwd(x, k), be)
        t_fb = timeit(fwd_bwd, be)
        perm_bytes = 1 if k <= 256 else 2
        lim_fwd = t_copy * (8 + perm_bytes) / 8 if be.gpu else None
        t_torch = t_torch_fb = None
        if tx is not None:
            t_torch = timeit(lambda: be.torch.sort(tx.detach().view(view), dim=-1), be, torch_sync=True)

            def torch_fb():
                y, _ = be.torch.sort(tx.view(view), dim=-1)
                return be.torch.autograd.grad(y, tx, tg.view(view))

            t_torch_fb = timeit(torch_fb, be, torch_sync=True)
        rows.append(["n" if k == n else k, _ms(t_fun), _pct(t_copy, t_fun), _ms(t_plain),
                     _ratio(t_plain, t_fun), _ms(t_fwd),
                     _pct(lim_fwd, t_fwd), _ms(t_fb), _ratio(t_fb, t_fun), _ratio(t_fb, t_fwd),
                     _ms(t_torch), _ratio(t_torch, t_fun), _ms(t_torch_fb), _ratio(t_torch_fb, t_fb)])
    table(["k", "group_sort ms", "% of copy", f"{be.xp.__name__}.sort of the view ms",
           "x faster than that sort", "fwd (residuals) ms", "% of copy+perm", "fwd+bwd ms",
           "fwd+bwd / group_sort", "fwd+bwd / fwd", "torch sort-on-view ms", "x faster than torch",
           "torch fwd+bwd ms", "fwd+bwd x faster than torch"], rows)
    # Layouts: the transposed (F-order) input is used through its C-order transpose (free); a
    # strided view is copied to C order first.
    rows = []
    for k in (2, 16):
        cases = [("C order, axis -1", x, -1), ("C order, axis 0 (groups down the columns)", x, 0),
                 ("transposed view x.T (F order), axis -1", x.T, -1),
                 ("strided view x[:, ::2], axis -1", x[:, ::2], -1)]
        for label, arr, axis in cases:
            if arr.shape[axis] % k:
                continue
            t = timeit(lambda: reflip.group_sort(arr, k, axis=axis), be)
            bytes_moved = 2 * arr.size * arr.itemsize
            rows.append([k, label, "x".join(map(str, arr.shape)), _ms(t),
                         f"{bytes_moved / t / 1e9:.0f}", _pct(t_copy * arr.size / x.size, t)])
    print("Layouts (same data; GB/s counts one read and one write of the entries sorted):\n")
    table(["k", "input", "shape", "group_sort ms", "GB/s", "% of copy"], rows)


# ----------------------------------------------------------------------------------------------
# Björck


def _gemm_time(be, m, n, dtype=np.float32, batch=()):
    a, b = _normal(be, (*batch, m, n), 2, dtype), _normal(be, (*batch, n, n), 3, dtype)
    return timeit(lambda: a @ b, be)


def _residual(y, xp):
    return float(xp.max(xp.linalg.norm(y.mT @ y - xp.eye(y.shape[-1], dtype=y.dtype), axis=(-2, -1))))


def torch_bjorck(torch, w, n_iter):
    """The usual PyTorch loop (order 1, Frobenius scaling)."""
    a = w / torch.linalg.matrix_norm(w, keepdim=True)
    for _ in range(n_iter):
        a = 1.5 * a - 0.5 * a @ (a.mT @ a)
    return a


def bjorck_section(be, quick, n_iter=25):
    n = 128 if quick else (4096 if be.gpu else 1024)
    print(f"### Björck, order 1, {n_iter} steps, {n}x{n} float32, {be.name} ({be.device})\n")
    w = well_conditioned(be.xp, n, "float32", lo=0.1)
    g = _normal(be, (n, n), 5)
    t_gemm = _gemm_time(be, n, n)
    units_fwd = 2 * n_iter + 1
    units_bwd = 3 * n_iter
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    print(f"GEMM {n}^3: {_ms(t_gemm)} ms = {2 * n ** 3 / t_gemm / 1e12:.2f} TFLOP/s (float32).\n")
    rows = []
    y, info = reflip.bjorck(w, n_iter=n_iter, return_info=True)
    r32 = info.max_residual
    t_fwd = timeit(lambda: reflip.bjorck(w, n_iter=n_iter), be)
    rows.append(["forward (bjorck)", _ms(t_fwd), units_fwd, _pct(units_fwd * t_gemm, t_fwd), f"{r32:.1e}", "-"])

    def fb(**kw):
        return lambda: reflip.bjorck_bwd(reflip.bjorck_fwd(w, n_iter=n_iter, **kw)[1], g)

    t_fb = timeit(fb(), be)
    rows.append(["fwd+bwd unrolled", _ms(t_fb), units_fwd + units_bwd,
                 _pct((units_fwd + units_bwd) * t_gemm, t_fb), "-", f"bwd/fwd {(t_fb - t_fwd) / t_fwd:.2f}"])
    t_ck = timeit(fb(checkpoint=True), be)
    rows.append(["fwd+bwd unrolled, checkpoint", _ms(t_ck), "-", "-", "-", f"bwd/fwd {(t_ck - t_fwd) / t_fwd:.2f}"])
    t_imp = timeit(fb(backward="implicit"), be)
    rows.append(["fwd+bwd implicit (well-conditioned input)", _ms(t_imp), "-", "-", "-",
                 f"bwd/fwd {(t_imp - t_fwd) / t_fwd:.2f}"])
    if be.gpu:
        bj = importlib.import_module("reflip.bjorck")
        default_polish = bj.TF32_POLISH
        for polish in sorted({2, 3, default_polish}):
            bj.TF32_POLISH = polish  # read at every call: the schedule of "tf32-mixed"
            try:
                _, info_m = reflip.bjorck(w, n_iter=n_iter, precision="tf32-mixed", return_info=True)
                t_mix = timeit(lambda: reflip.bjorck(w, n_iter=n_iter, precision="tf32-mixed"), be)
            finally:
                bj.TF32_POLISH = default_polish
            mark = " (default)" if polish == default_polish else ""
            rows.append([f"forward tf32-mixed, last {polish} steps float32{mark}", _ms(t_mix), "-", "-",
                         f"{info_m.max_residual:.1e}", f"{t_fwd / t_mix:.2f}x faster than float32"])
        from reflip._fast.cupy_bjorck import tf32_matmul

        with tf32_matmul(w.dtype):
            _, info_t = reflip.bjorck(w, n_iter=n_iter, return_info=True)
        rows.append(["forward, every step TF32 (no polishing; for reference)", "-", "-", "-",
                     f"{info_t.max_residual:.1e}", "-"])
        t_mix_fb = timeit(fb(precision="tf32-mixed"), be)
        rows.append(["fwd+bwd unrolled, tf32-mixed forward", _ms(t_mix_fb), "-", "-", "-",
                     f"{t_fb / t_mix_fb:.2f}x faster"])
    if be.torch is not None:
        tw = be.to_torch(w)
        t_t = timeit(lambda: torch_bjorck(be.torch, tw, n_iter), be, torch_sync=True)
        rows.append(["torch loop forward (same steps)", _ms(t_t), units_fwd - 1,
                     _pct((units_fwd - 1) * t_gemm, t_t), "-", f"reflip/torch {t_fwd / t_t:.2f}"])
    table(["what", "ms", "GEMM units", "% of GEMM rate", "residual", "note"], rows)
    # A batch of small matrices: one batched GEMM per product.
    b, s = (32, 16) if quick else (512, 64)
    wb = well_conditioned(be.xp, s, "float32", batch=(b,))
    t_b = timeit(lambda: reflip.bjorck(wb, n_iter=n_iter), be)
    t_bg = _gemm_time(be, s, s, batch=(b,))
    # The same number of batched products issued from a Python loop, nothing else: what the
    # launches alone cost at this size.
    pa, pb = _normal(be, (b, s, s), 2), _normal(be, (b, s, s), 3)
    t_loop = timeit(lambda: [pa @ pb for _ in range(units_fwd)], be)
    flops = units_fwd * b * 2 * s ** 3
    rows = [[f"{b} x {s}x{s}", _ms(t_bg), f"{b * 2 * s ** 3 / t_bg / 1e9:.0f}", _ms(t_b),
             f"{flops / t_b / 1e9:.0f}", _pct(units_fwd * t_bg, t_b), _ms(t_loop)]]
    table(["batch", "batched GEMM ms", "GEMM GFLOP/s", "bjorck fwd ms", "bjorck GFLOP/s", "% of GEMM rate",
           f"{units_fwd} batched GEMMs in a Python loop, ms"], rows)


# ----------------------------------------------------------------------------------------------
# Projection, registry, scaling, memory


def projection_section(be, quick):
    n = 256 if quick else 4096
    w = _normal(be, (n, n))
    g = _normal(be, (n, n), 1)
    t_sort = timeit(lambda: be.xp.sort(w, axis=-1), be)
    t_fwd = timeit(lambda: reflip.linf_project(w), be)
    t_fb = timeit(lambda: reflip.linf_project_bwd(reflip.linf_project_fwd(w)[1], g), be)
    print(f"### l_inf projection, {n}x{n} float32, {be.name} ({be.device})\n")
    table(["operation", "ms", "rows/s", "time / sort"],
          [["sort of the rows", _ms(t_sort), f"{n / t_sort:,.0f}", "1.00"],
           ["linf_project forward", _ms(t_fwd), f"{n / t_fwd:,.0f}", _ratio(t_fwd, t_sort)],
           ["linf_project forward + backward", _ms(t_fb), f"{n / t_fb:,.0f}", _ratio(t_fb, t_sort)]])


def _limit(name, be, x, params, t_copy):
    """Limit time of the plain function (see the module docstring)."""
    if name == "bjorck":
        m, n = sorted(x.shape[-2:], reverse=True)
        units = 25 * (2 + (params.get("order", 1) - 1) * n / m) + 1
        return units * _gemm_time(be, m, n)
    if name == "spectral_normalize":
        return 50 * t_copy  # 2 products with W per power step, each reading W once
    return t_copy


def _torch_way(name, be, x, params):
    if be.torch is None:
        return None
    t = be.to_torch(x)
    if name == "group_sort":
        k = params["group_size"]
        return timeit(lambda: be.torch.sort(t.view(t.shape[0], -1, k), dim=-1), be, torch_sync=True)
    if name == "bjorck" and params.get("order", 1) == 1:
        return timeit(lambda: torch_bjorck(be.torch, t, 25), be, torch_sync=True)
    return None


def registry_section(be, quick):
    print(f"### Registry primitives, {be.name} ({be.device})\n")
    rows = []
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    for name, rec in sorted(REGISTRY.items()):
        factory = rec.bench_factory()
        if factory is None:
            rows.append([name, be.name, "(no bench_inputs)"] + ["-"] * 7)
            continue
        for label, x, params in factory(be.xp, "float32", "small" if quick else "full"):
            t_copy = be.copy_time(x)
            t_fun = timeit(lambda: rec.fun(x, **params), be)
            y, _ = rec.fwd(x, **params)
            y_bar = be.xp.ones_like(y)
            t_fb = timeit(lambda: rec.bwd(rec.fwd(x, **params)[1], y_bar), be)
            limit = _limit(name, be, x, params, t_copy)
            t_torch = _torch_way(name, be, x, params)
            rows.append([name, be.name, label, "float32", _ms(t_fun), _pct(limit, t_fun), _ms(t_fb),
                         _ratio(t_fb, t_fun), _ms(t_torch), _ratio(t_torch, t_fun)])
    table(["primitive", "backend", "shape", "dtype", "time ms", "% of limit", "fwd+bwd ms",
           "fwd+bwd / time", "torch way ms", "x faster than torch"], rows)


def scaling_section(be, quick):
    print(f"### Scaling, {be.name} ({be.device})\n")
    rows = []
    big = not quick
    for m in ((256, 512, 1024) if quick else (1024, 2048, 4096, 8192) if be.gpu else (512, 1024, 2048, 4096)):
        x = _normal(be, (m, 1024))
        t = timeit(lambda: reflip.group_sort(x, 4), be)
        rows.append(["group_sort k=4", f"{m}x1024", _ms(t), f"{1e9 * t / x.size:.3f} ns / entry"])
    for n in ((64, 128, 256) if quick else (256, 512, 1024, 2048, 4096)):
        w = _normal(be, (512 if big else 64, n))
        t = timeit(lambda: reflip.linf_project(w), be)
        rows.append(["linf_project", f"{w.shape[0]}x{n}", _ms(t),
                     f"{1e9 * t / (w.size * math.log2(n)):.3f} ns / (entry log2 n)"])
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    for n in ((32, 64, 128) if quick else (256, 512, 1024, 2048, 4096) if be.gpu else (128, 256, 512, 1024)):
        w = well_conditioned(be.xp, n, "float32")
        t = timeit(lambda: reflip.bjorck(w), be)
        rows.append(["bjorck order 1, 25 steps", f"{n}x{n}", _ms(t), f"{1e12 * t / n ** 3:.3f} ps / n^3"])
    table(["primitive", "shape", "ms", "time / expected growth"], rows)


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


def memory_section(be, quick, n_iter=25):
    n = 64 if quick else (2048 if be.gpu else 512)
    w = well_conditioned(be.xp, n, "float32")
    g = _normal(be, (n, n), 1)
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    rows = []
    for label, kw in [("unrolled, iterates stored", {}), ("unrolled, checkpoint=True", {"checkpoint": True}),
                      ("implicit", {"backward": "implicit"})]:
        peak = _peak_bytes(be, lambda: reflip.bjorck_bwd(reflip.bjorck_fwd(w, n_iter=n_iter, **kw)[1], g))
        rows.append([label, f"{peak / 2 ** 20:.1f}", f"{peak / w.nbytes:.1f}"])
    print(f"### Björck forward + backward peak memory, {n}x{n} float32, {n_iter} steps, {be.name}\n")
    table(["backward", "peak MiB (allocated during fwd+bwd)", "in units of w"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", nargs="+", default=["numpy"], choices=["numpy", "cupy"])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--quick", action="store_true", help="small sizes (a dry run)")
    args = parser.parse_args(argv)
    versions = f"reflip {reflip.__version__}, numpy {np.__version__}"
    for name in args.backend:
        be = Backend(name)
        extra = ""
        if be.gpu:
            import cupy

            extra += f", cupy {cupy.__version__}"
        if be.torch is not None:
            extra += f", torch {be.torch.__version__} ({be.tdev})"
        print(f"## {be.name} on {be.device} — {datetime.date.today()}; {versions}{extra}\n")
        for section in args.sections:
            globals()[f"{section}_section"](be, args.quick)


if __name__ == "__main__":
    main()
