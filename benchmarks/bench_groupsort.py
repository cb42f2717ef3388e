"""GroupSort benchmarks: forward and forward + backward against the copy bandwidth, the backend's
own sort of the ``(m, n/k, k)`` view and the obvious differentiable array code (argsort,
gather, scatter), and ``torch.sort`` on the view, all measured in the same run; then the same
data in other memory layouts.

    python benchmarks/bench_groupsort.py [--backend numpy cupy] [--shapes 4096x1024] [--quick]

k runs over 2, 4, 8, 16, 32 and n (FullSort). Default shape: 8192 x 4096 on a GPU, 4096 x 1024
on a CPU; ``--quick``: 256 x 512. "% of copy" is the copy time over the measured time (100%:
as fast as reading and writing the array once); "% of copy+perm" counts the permutation the
forward with residuals also writes (GPU only: on a CPU the copy is not the limit).
"""
from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the `benchmarks` package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

import reflip
from benchmarks.common import (
    add_backend_argument,
    backends,
    heading,
    ms,
    parse_shapes,
    pct,
    ratio,
    table,
    timeit,
    timeit_pair,
)


def argsort_fwd_bwd(xp, x, k, g):
    """The obvious differentiable GroupSort in array code: argsort, gather, scatter back."""
    xg = x.reshape(x.shape[0], -1, k)
    perm = xp.argsort(xg, axis=-1)
    y = xp.take_along_axis(xg, perm, axis=-1)
    x_bar = xp.empty_like(xg)
    xp.put_along_axis(x_bar, perm, g.reshape(xg.shape), axis=-1)
    return y, x_bar


def default_shape(be, quick):
    return (256, 512) if quick else ((8192, 4096) if be.gpu else (4096, 1024))


def section(be, quick=False, shape=None):
    """The GroupSort table and the layouts table for one backend."""
    m, n = shape or default_shape(be, quick)
    x, g = be.normal((m, n)), be.normal((m, n), seed=1)
    t_copy = be.copy_time(x)
    print(f"### GroupSort, {m}x{n} float32, {be.name} ({be.device})\n")
    print(f"Copy of the array (read + write): {ms(t_copy)} ms = {2 * x.nbytes / t_copy / 1e9:.0f} GB/s.\n")
    tx = tg = None
    if be.torch is not None:
        tx = be.to_torch(x).clone().requires_grad_(True)
        tg = be.to_torch(g)
    rows = []
    for k in (2, 4, 8, 16, 32, n):
        if n % k:
            continue

        def fwd_bwd():
            _, res = reflip.group_sort_fwd(x, k)
            return reflip.group_sort_bwd(res, g)

        view = (m, n // k, k)
        # The sort of the view (np.sort for k = n is FullSort's reference) is timed in
        # alternation with group_sort: their ratio survives a slow period of the machine.
        t_fun, t_plain = timeit_pair(lambda: reflip.group_sort(x, k), lambda: be.xp.sort(x.reshape(view), axis=-1), be)
        t_fwd = timeit(lambda: reflip.group_sort_fwd(x, k), be)
        t_fb, t_obvious = timeit_pair(fwd_bwd, lambda: argsort_fwd_bwd(be.xp, x, k, g), be)
        perm_bytes = 1 if k <= 256 else 2
        lim_fwd = t_copy * (8 + perm_bytes) / 8 if be.gpu else None
        t_torch = t_torch_fb = None
        if tx is not None:
            t_torch = timeit(lambda: be.torch.sort(tx.detach().view(view), dim=-1), be, torch_sync=True)

            def torch_fb():
                y, _ = be.torch.sort(tx.view(view), dim=-1)
                return be.torch.autograd.grad(y, tx, tg.view(view))

            t_torch_fb = timeit(torch_fb, be, torch_sync=True)
        rows.append(["n" if k == n else k, ms(t_fun), pct(t_copy, t_fun), ms(t_plain), ratio(t_plain, t_fun),
                     ms(t_fwd), pct(lim_fwd, t_fwd), ms(t_fb), ratio(t_fb, t_fun), ratio(t_fb, t_fwd),
                     ratio(t_obvious, t_fb), ms(t_torch), ratio(t_torch, t_fun), ms(t_torch_fb),
                     ratio(t_torch_fb, t_fb)])
    table(["k", "group_sort ms", "% of copy", f"{be.xp.__name__}.sort of the view ms", "x faster than that sort",
           "fwd (residuals) ms", "% of copy+perm", "fwd+bwd ms", "fwd+bwd / group_sort", "fwd+bwd / fwd",
           "fwd+bwd x faster than argsort+gather+scatter", "torch sort-on-view ms", "x faster than torch",
           "torch fwd+bwd ms", "fwd+bwd x faster than torch"], rows)
    layouts_table(be, x, t_copy)


def layouts_table(be, x, t_copy):
    """The transposed (F-order) input is sorted through its C-order transpose (free); a strided
    view is copied to C order first."""
    rows = []
    for k in (2, 16):
        cases = [("C order, axis -1", x, -1), ("C order, axis 0 (groups down the columns)", x, 0),
                 ("transposed view x.T (F order), axis -1", x.T, -1),
                 ("strided view x[:, ::2], axis -1", x[:, ::2], -1)]
        for label, arr, axis in cases:
            if arr.shape[axis] % k:
                continue
            t = timeit(lambda: reflip.group_sort(arr, k, axis=axis), be)
            rows.append([k, label, "x".join(map(str, arr.shape)), ms(t), f"{2 * arr.size * arr.itemsize / t / 1e9:.0f}",
                         pct(t_copy * arr.size / x.size, t)])
    print("Layouts (same data; GB/s counts one read and one write of the entries sorted):\n")
    table(["k", "input", "shape", "group_sort ms", "GB/s", "% of copy"], rows)


def scaling_rows(be, quick=False):
    """Rows of the scaling table (benchmarks/run.py): time per entry should stay flat."""
    rows = []
    for m in (256, 512, 1024) if quick else (1024, 2048, 4096, 8192) if be.gpu else (512, 1024, 2048, 4096):
        x = be.normal((m, 1024))
        t = timeit(lambda: reflip.group_sort(x, 4), be)
        rows.append(["group_sort k=4", f"{m}x1024", ms(t), f"{1e9 * t / x.size:.3f} ns / entry"])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backend_argument(parser)
    parser.add_argument("--shapes", nargs="+", default=None, help="MxN, e.g. 4096x1024 (default: per backend)")
    parser.add_argument("--quick", action="store_true", help="small sizes (a dry run)")
    args = parser.parse_args(argv)
    shapes = parse_shapes(args.shapes) if args.shapes else [None]
    for be in backends(args.backend):
        heading(be)
        for shape in shapes:
            section(be, args.quick, shape)


if __name__ == "__main__":
    main()
