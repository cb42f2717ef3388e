"""One training step of a Lipschitz classifier: forward + backward + Adam update of the paper's
robust-MNIST-sized network, 784-1024-1024-1024-10, MaxMin, Björck-constrained weights, multi-
class hinge loss, at batch 128 [NN-1] [NN-2] — and where the time goes.

    python benchmarks/bench_nn.py [--backend numpy cupy] [--torch] [--dtype float32]
                                  [--batch 128] [--n-iter 25] [--order 1] [--repeat 3]
                                  [--widths 784 1024 1024 1024 10] [--tf32] [--quick]

For every backend (default: NumPy, plus CuPy when it sees a GPU) it prints the time of a whole
step, then the same step's parts timed one by one on the same arrays: the Björck forward and
unrolled backward of every weight, the GEMMs of the Dense layers (``X W^T``, ``Ybar W``,
``Ybar^T X`` and the bias sums), the activations (MaxMin forward and backward), and the loss
plus the optimizer update. ``--torch`` adds the same network written in PyTorch (autograd
through the same unrolled order-1 Björck loop, MaxMin from min/max of pairs,
``multi_margin_loss``, ``torch.optim.Adam``) on the matching device. ``--tf32`` runs CuPy's
float32 Björck in the "tf32-mixed" precision when reflip's Björck offers it. Times are the
best of ``--repeat`` runs after a warm-up; GPU timings synchronise the device. Prints Markdown.
``--quick``: a 64-128-128-10 network, batch 32, 5 iterations (a dry run). PyTorch is imported
only with ``--torch`` and is not in the ``bench`` extra (install the build for your device).
"""
from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the `benchmarks` package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import math

import numpy as np

from benchmarks.bench_bjorck import measure_both
from benchmarks.common import backends, heading, table
from benchmarks.common import timeit as _timeit
from reflip import bjorck_bwd, bjorck_fwd, group_sort_bwd, group_sort_fwd, nn
from reflip.nn import losses, optim, train

#: ``--quick``: a small network, a few iterations (a dry run in seconds).
QUICK = dict(widths=[64, 128, 128, 10], batch=32, n_iter=5, repeat=2)


def timeit(fn, be, repeat, torch_sync=False):
    """Best of exactly ``repeat`` rounds (a training step is too slow for a time budget)."""
    return _timeit(fn, be, repeat=repeat, budget=math.inf, torch_sync=torch_sync)


def namespace(be):
    """The array-API namespace the model is built in (array_api_compat's wrapper of ``be.xp``)."""
    if be.gpu:
        import array_api_compat.cupy as xp
    else:
        import array_api_compat.numpy as xp
    return xp


def build(widths, n_iter, order, options):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Dense(a, b, "bjorck", n_iter=n_iter, order=order, **options))
        if i < len(widths) - 2:
            layers.append(nn.Activation("max_min"))
    return nn.Sequential(layers)


def _training_setup(model, xp, args):
    """``(params, x, labels, objective, optimizer, state, rng)`` of the timed training step:
    seeded parameters and batch, the multi-class hinge (margin 0.3), Adam, and the generator
    that drew the batch (for further inputs of the same run)."""
    params = model.init(seed=0, xp=xp, dtype=args.dtype)
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((args.batch, args.widths[0])), dtype=getattr(xp, args.dtype))
    labels = xp.asarray(rng.integers(0, args.widths[-1], args.batch))
    opt = optim.Adam(1e-3)
    objective = train.supervised_objective(model, "multi_margin", margin=0.3)
    return params, x, labels, objective, opt, opt.init(params), rng


def reflip_rows(be, args):
    xp = namespace(be)
    options = {"precision": "tf32-mixed"} if (args.tf32 and be.gpu and args.dtype == "float32") else {}
    model = build(args.widths, args.n_iter, args.order, options)
    params, x, labels, objective, opt, state, rng = _training_setup(model, xp, args)

    def step():
        _, grads = objective(params, (x, labels))
        opt.update(params, grads, state)

    total = timeit(step, be, args.repeat)
    dense = [(layer, p) for layer, p in zip(model.layers, params, strict=True) if isinstance(layer, nn.Dense)]

    def bjorck_part():
        for layer, p in dense:
            w_eff, res = bjorck_fwd(p["W"], **layer.options)
            bjorck_bwd(res, w_eff)

    # The GEMMs of a step on activations of the step's shapes (their values do not matter).
    acts = [xp.ones((args.batch, layer.in_features), dtype=x.dtype) for layer, _ in dense]
    cots = [xp.ones((args.batch, layer.out_features), dtype=x.dtype) for layer, _ in dense]

    def gemm_part():
        for (_, p), a, c in zip(dense, acts, cots, strict=True):
            _ = a @ p["W"].T + p["b"]
            _ = c @ p["W"]
            _ = c.T @ a
            _ = xp.sum(c, axis=0)

    hidden = [xp.asarray(rng.standard_normal((args.batch, w)), dtype=x.dtype) for w in args.widths[1:-1]]

    def activation_part():
        for h in hidden:
            y, res = group_sort_fwd(h, 2)
            group_sort_bwd(res, y)

    logits = xp.asarray(rng.standard_normal((args.batch, args.widths[-1])), dtype=x.dtype)
    _, grads = objective(params, (x, labels))

    def loss_update_part():
        _, res = losses.multi_margin_fwd(logits, labels, margin=0.3)
        losses.multi_margin_bwd(res, 1.0)
        opt.update(params, grads, state)

    parts = {k: timeit(fn, be, args.repeat) for k, fn in
             [("bjorck", bjorck_part), ("gemm", gemm_part), ("activations", activation_part),
              ("loss+update", loss_update_part)]}
    residual = float(bjorck_fwd(params[0]["W"], **dense[0][0].options)[1].info.max_residual)
    label = "reflip" + (" (tf32-mixed Björck)" if options else "")
    return [dict(backend=be.name, device=be.device, impl=label, total=total, residual=residual, **parts)]


def torch_rows(be, args):
    if be.torch is None:
        return []
    torch, device = be.torch, be.tdev
    import torch.nn.functional as F

    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    ws = [torch.nn.init.orthogonal_(torch.empty(b, a, dtype=dtype), generator=gen).to(device).requires_grad_()
          for a, b in zip(args.widths[:-1], args.widths[1:], strict=True)]
    bs = [torch.zeros(b, dtype=dtype, device=device, requires_grad=True) for b in args.widths[1:]]
    x = torch.randn(args.batch, args.widths[0], generator=gen, dtype=dtype).to(device)
    labels = torch.randint(0, args.widths[-1], (args.batch,), generator=gen).to(device)
    opt = torch.optim.Adam(ws + bs, lr=1e-3)

    def bjorck(w):
        # Order 1 with the Frobenius scaling, on the tall orientation (the smaller Gram matrix).
        a = w.T if w.shape[0] < w.shape[1] else w
        a = a / torch.linalg.matrix_norm(a)
        for _ in range(args.n_iter):
            a = 1.5 * a - 0.5 * a @ (a.T @ a)
        return a.T if w.shape[0] < w.shape[1] else a

    def max_min(h):
        pairs = h.view(h.shape[0], -1, 2)
        return torch.stack([pairs.min(-1).values, pairs.max(-1).values], -1).view(h.shape)

    def step():
        opt.zero_grad(set_to_none=True)
        h = x
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = h @ bjorck(w).T + b
            if i < len(ws) - 1:
                h = max_min(h)
        F.multi_margin_loss(h, labels, p=1, margin=0.3).backward()
        opt.step()

    total = timeit(step, be, args.repeat, torch_sync=True)
    return [dict(backend=be.name, device=be.device, impl=f"PyTorch {torch.__version__}", total=total)]


# ----------------------------------------------------------------------------------------------
# reflip (core, fused, stopped at PyTorch's orthonormality) against PyTorch, 1 and 2 threads


def _reflip_step(be, args, options, fused=True, constraint="bjorck"):
    """``(step, residual)``: one training step of the reflip network with the ``constraint``'s
    ``options`` (the NumPy fast path of Björck on or off) and the largest final
    ``||Y^T Y - I||_F`` over its layers."""
    import reflip
    from reflip._fast import numpy_bjorck

    xp = namespace(be)
    if constraint == "bjorck":
        model = build(args.widths, args.n_iter, args.order, options)
    else:
        model = nn.Sequential([layer for i, (a, b) in enumerate(zip(args.widths[:-1], args.widths[1:], strict=True))
                               for layer in ([nn.Dense(a, b, constraint, **options)]
                                             + ([nn.Activation("max_min")] if i < len(args.widths) - 2 else []))])
    fwd = getattr(reflip, f"{constraint}_fwd")
    params, x, labels, objective, opt, state, rng = _training_setup(model, xp, args)

    def step():
        old = numpy_bjorck.ENABLED
        numpy_bjorck.ENABLED = fused
        try:
            _, grads = objective(params, (x, labels))
        finally:
            numpy_bjorck.ENABLED = old
        opt.update(params, grads, state)

    residual = max(_residual64(np.asarray(fwd(p["W"], **layer.options)[0]))
                   for layer, p in zip(model.layers, params, strict=True) if isinstance(layer, nn.Dense))
    return step, residual


def _residual64(y):
    """``||Y^T Y - I||_F`` of the smaller Gram matrix, computed in float64 from the output (the
    same measurement for every implementation, whatever precision its own report uses)."""
    y = np.asarray(y, dtype=np.float64)
    y = y.T if y.shape[0] < y.shape[1] else y
    return float(np.linalg.norm(y.T @ y - np.eye(y.shape[1])))


def _torch_step(be, args):
    """``(step, residual)`` of the PyTorch network of :func:`torch_rows` (same init as there)."""
    torch = be.torch
    import torch.nn.functional as F

    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    ws = [torch.nn.init.orthogonal_(torch.empty(b, a, dtype=dtype), generator=gen).requires_grad_()
          for a, b in zip(args.widths[:-1], args.widths[1:], strict=True)]
    bs = [torch.zeros(b, dtype=dtype, requires_grad=True) for b in args.widths[1:]]
    x = torch.randn(args.batch, args.widths[0], generator=gen, dtype=dtype)
    labels = torch.randint(0, args.widths[-1], (args.batch,), generator=gen)
    opt = torch.optim.Adam(ws + bs, lr=1e-3)

    def tall_bjorck(w):
        a = w.T if w.shape[0] < w.shape[1] else w
        a = a / torch.linalg.matrix_norm(a)
        for _ in range(args.n_iter):
            a = 1.5 * a - 0.5 * a @ (a.T @ a)
        return a

    def step():
        opt.zero_grad(set_to_none=True)
        h = x
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            a = tall_bjorck(w)
            h = h @ (a.T if w.shape[0] < w.shape[1] else a).T + b
            if i < len(ws) - 1:
                pairs = h.view(h.shape[0], -1, 2)
                h = torch.stack([pairs.min(-1).values, pairs.max(-1).values], -1).view(h.shape)
        F.multi_margin_loss(h, labels, p=1, margin=0.3).backward()
        opt.step()

    with torch.no_grad():
        residual = max(_residual64(a.numpy()) for a in map(tall_bjorck, ws))
    return step, residual


def compare_section(be, args):
    """The training step of reflip (the core, the fused NumPy path, the fused path stopped by
    ``tol`` once as orthonormal as PyTorch's 25 steps) against PyTorch, in alternating rounds,
    with 1 and 2 BLAS / PyTorch threads (``--threads``)."""
    # SciPy's BLAS (the fused Björck path) is a second OpenBLAS with its own thread pool: load
    # it before limiting, or threadpoolctl (which acts on the loaded libraries) misses it.
    import scipy.linalg.blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    torch = be.torch
    rows = []
    for threads in args.threads:
        with threadpool_limits(threads):
            torch.set_num_threads(threads)
            t_step, t_res = _torch_step(be, args)
            fns = {"PyTorch": (t_step, t_res)}
            fns["reflip core"] = _reflip_step(be, args, {}, fused=False)
            fns["reflip fused"] = _reflip_step(be, args, {})
            # Equal final orthonormality: 25 order-1 steps leave every layer at the float32
            # floor (~1e-5, [BJ-10]); stop as soon as reflip's own residual is within twice
            # PyTorch's (both measured in float64 in the table; n_iter stays the cap).
            tol = 2 * t_res
            # A tolerance >= 1 certifies nothing (it admits zero singular values, [BJ-7]):
            # PyTorch ended that far from orthonormal only in dry runs with a few iterations.
            if tol < 1:
                fns["reflip fused, tol = 2 x PyTorch's residual"] = _reflip_step(be, args, {"tol": tol})
            if "polar" in nn.layers.CONSTRAINTS and tol < 1:
                # The polar iteration [PO-1] to the same orthonormality: the orthogonal init
                # puts every Frobenius-scaled singular value at 1/sqrt(N) >= 1/32, above the
                # design bound 1e-2, and training keeps them near it.
                fns["reflip polar degree 5, tol = 2 x PyTorch's residual"] = _reflip_step(
                    be, args, {"degree": 5, "lower": 1e-2, "tol": tol, "n_iter": args.n_iter}, constraint="polar")
            t = measure_both({k: v[0] for k, v in fns.items()}, repeat=args.repeat)
            for name, (_, res) in fns.items():
                (tw, tc), (pw, pc) = t[name], t["PyTorch"]
                rows.append([threads, name, f"{1e3 * tw.best:.0f} ({1e3 * tw.worst:.0f})",
                             f"{1e3 * tc.best:.0f} ({1e3 * tc.worst:.0f})", f"{res:.1e}",
                             f"{pw.best / tw.best:.2f}", f"{pc.best / tc.best:.2f}"])
    print(f"### Training step against PyTorch by threads, {be.name} ({be.device})\n")
    print(f"Network {'-'.join(map(str, args.widths))}, MaxMin, Björck order {args.order} x {args.n_iter} "
          f"(reflip with tol: at most {args.n_iter}), multi-margin loss, Adam; batch {args.batch}, {args.dtype}; "
          f"alternating rounds, best of {args.repeat} after a warm-up; CPU time of the process (all its threads, "
          f"spin-waits included).\n")
    table(["threads", "implementation", "wall ms / step, best (worst)", "CPU ms / step, best (worst)",
           "final ||Y^T Y - I||_F (worst layer, float64)", "PyTorch / this, wall", "PyTorch / this, CPU"], rows,
          align="rl" + "r" * 5)


def section(be, quick=False, args=None):
    """The training-step table for one backend (``args``: the options of :func:`main`)."""
    args = args or parser().parse_args([])
    if quick:
        args = argparse.Namespace(**{**vars(args), **QUICK})
    rows = reflip_rows(be, args)
    if args.tf32 and be.gpu:
        rows += reflip_rows(be, argparse.Namespace(**{**vars(args), "tf32": False}))
    if args.torch:
        rows += torch_rows(be, args)
    print(f"### Training step, {be.name} ({be.device})\n")
    print(f"Network {'-'.join(map(str, args.widths))}, MaxMin, Björck order {args.order} x {args.n_iter} "
          f"iterations per forward, multi-margin loss, Adam; batch {args.batch}, {args.dtype}; best of "
          f"{args.repeat}.\n")
    out = []
    for r in rows:
        if "bjorck" in r:
            parts = sum(r[k] for k in ("bjorck", "gemm", "activations", "loss+update"))
            cells = [_share(r, "bjorck"), _share(r, "gemm"), _share(r, "activations"), _share(r, "loss+update"),
                     f"{parts / r['total']:.2f}", f"{r['residual']:.1e}"]
        else:
            cells = ["-"] * 6
        out.append([r["backend"], r["device"], r["impl"], f"{1e3 * r['total']:.1f}", *cells])
    table(["backend", "device", "implementation", "ms / step", "Björck fwd+bwd", "GEMMs", "activations",
           "loss + update", "parts / step", "Björck residual"], out, align="lll" + "r" * 7)


def _share(r, key):
    return f"{1e3 * r[key]:.1f} ({100 * r[key] / r['total']:.0f}%)"


def parser():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", nargs="+", default=None, choices=["numpy", "cupy"],
                    help="default: numpy, and cupy with a GPU")
    ap.add_argument("--torch", action="store_true", help="also time the same network in PyTorch")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-iter", type=int, default=25, help="Björck iterations per forward pass")
    ap.add_argument("--order", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--widths", type=int, nargs="+", default=[784, 1024, 1024, 1024, 10])
    ap.add_argument("--tf32", action="store_true", help="CuPy float32: Björck in tf32-mixed precision")
    ap.add_argument("--quick", action="store_true", help=f"a small network: {QUICK}")
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="with --torch, NumPy only: instead of the tables above, reflip (core, fused, fused "
                         "stopped at PyTorch's orthonormality) against PyTorch in alternating rounds, "
                         "under each number of BLAS / PyTorch threads (threadpoolctl)")
    return ap


def main(argv=None):
    ap = parser()
    args = ap.parse_args(argv)
    if args.torch and args.order != 1:
        ap.error("--torch compares the order-1 Björck loop; use --order 1")
    if args.threads is not None:
        if not args.torch:
            ap.error("--threads compares with PyTorch: add --torch")
        args = argparse.Namespace(**{**vars(args), **(QUICK if args.quick else {})})
        be = backends(["numpy"], torch=True)[0]
        heading(be)
        return compare_section(be, args)
    for be in backends(args.backend, torch=args.torch):
        heading(be)
        section(be, args.quick, args)


if __name__ == "__main__":
    main()
