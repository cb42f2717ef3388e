"""One training step of a Lipschitz classifier: forward + backward + Adam update of the paper's
robust-MNIST-sized network, 784-1024-1024-1024-10, MaxMin, Björck-constrained weights, multi-
class hinge loss, at batch 128 [NN-1] [NN-2] — and where the time goes.

    python benchmarks/bench_nn.py [--backend numpy cupy] [--torch] [--dtype float32]
                                  [--batch 128] [--n-iter 25] [--order 1] [--repeat 3]
                                  [--widths 784 1024 1024 1024 10] [--tf32]

For every backend (default: NumPy, plus CuPy when it sees a GPU) it prints the time of a whole
step, then the same step's parts timed one by one on the same arrays: the Björck forward and
unrolled backward of every weight, the GEMMs of the Dense layers (``X W^T``, ``Ybar W``,
``Ybar^T X`` and the bias sums), the activations (MaxMin forward and backward), and the loss
plus the optimizer update. ``--torch`` adds the same network written in PyTorch (autograd
through the same unrolled order-1 Björck loop, MaxMin from min/max of pairs,
``multi_margin_loss``, ``torch.optim.Adam``) on the matching device. ``--tf32`` runs CuPy's
float32 Björck in the "tf32-mixed" precision when reflip's Björck offers it. Times are the
best of ``--repeat`` runs after a warm-up; GPU timings synchronise the device. Prints Markdown.
"""
from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np

from reflip import bjorck_bwd, bjorck_fwd, group_sort_bwd, group_sort_fwd, nn
from reflip.nn import losses, optim, train


def timeit(fn, sync, repeat):
    fn()
    sync()
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def namespace(name):
    """``(xp, sync, device name)``."""
    if name == "numpy":
        import array_api_compat.numpy as xp

        return xp, (lambda: None), f"CPU ({platform.processor() or platform.machine()})"
    import array_api_compat.cupy as xp
    import cupy

    return xp, cupy.cuda.Device().synchronize, cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def build(widths, n_iter, order, options):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Dense(a, b, "bjorck", n_iter=n_iter, order=order, **options))
        if i < len(widths) - 2:
            layers.append(nn.Activation("max_min"))
    return nn.Sequential(layers)


def reflip_rows(name, args):
    xp, sync, device = namespace(name)
    options = {"precision": "tf32-mixed"} if (args.tf32 and name == "cupy" and args.dtype == "float32") else {}
    model = build(args.widths, args.n_iter, args.order, options)
    params = model.init(seed=0, xp=xp, dtype=args.dtype)
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((args.batch, args.widths[0])), dtype=getattr(xp, args.dtype))
    labels = xp.asarray(rng.integers(0, args.widths[-1], args.batch))
    objective = train.supervised_objective(model, "multi_margin", margin=0.3)
    opt = optim.Adam(1e-3)
    state = opt.init(params)

    def step():
        _, grads = objective(params, (x, labels))
        opt.update(params, grads, state)

    total = timeit(step, sync, args.repeat)
    dense = [(layer, p) for layer, p in zip(model.layers, params) if isinstance(layer, nn.Dense)]

    def bjorck_part():
        for layer, p in dense:
            w_eff, res = bjorck_fwd(p["W"], **layer.options)
            bjorck_bwd(res, w_eff)

    # The GEMMs of a step on activations of the step's shapes (their values do not matter).
    acts = [xp.ones((args.batch, layer.in_features), dtype=x.dtype) for layer, _ in dense]
    cots = [xp.ones((args.batch, layer.out_features), dtype=x.dtype) for layer, _ in dense]

    def gemm_part():
        for (layer, p), a, c in zip(dense, acts, cots):
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

    parts = {k: timeit(fn, sync, args.repeat) for k, fn in
             [("bjorck", bjorck_part), ("gemm", gemm_part), ("activations", activation_part),
              ("loss+update", loss_update_part)]}
    residual = float(bjorck_fwd(params[0]["W"], **dense[0][0].options)[1].info.max_residual)
    label = "reflip" + (" (tf32-mixed Björck)" if options else "")
    return [dict(backend=name, device=device, impl=label, total=total, residual=residual, **parts)]


def torch_rows(name, args):
    import torch
    import torch.nn.functional as F

    device = "cuda" if name == "cupy" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        return []
    dtype = getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    ws = [torch.nn.init.orthogonal_(torch.empty(b, a, dtype=dtype), generator=gen).to(device).requires_grad_()
          for a, b in zip(args.widths[:-1], args.widths[1:])]
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
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = h @ bjorck(w).T + b
            if i < len(ws) - 1:
                h = max_min(h)
        F.multi_margin_loss(h, labels, p=1, margin=0.3).backward()
        opt.step()

    total = timeit(step, sync, args.repeat)
    return [dict(backend=name, device=device, impl=f"PyTorch {torch.__version__}", total=total)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", nargs="+", default=None, choices=["numpy", "cupy"])
    ap.add_argument("--torch", action="store_true", help="also time the same network in PyTorch")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-iter", type=int, default=25, help="Björck iterations per forward pass")
    ap.add_argument("--order", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--widths", type=int, nargs="+", default=[784, 1024, 1024, 1024, 10])
    ap.add_argument("--tf32", action="store_true", help="CuPy float32: Björck in tf32-mixed precision")
    args = ap.parse_args(argv)
    if args.torch and args.order != 1:
        ap.error("--torch compares the order-1 Björck loop; use --order 1")
    backends = args.backend
    if backends is None:
        from reflip.testing.backends import available_backends

        backends = [b.name for b in available_backends(("numpy", "cupy"))]
    rows = []
    for name in backends:
        rows += reflip_rows(name, args)
        if args.tf32 and name == "cupy":
            rows += reflip_rows(name, argparse.Namespace(**{**vars(args), "tf32": False}))
        if args.torch:
            rows += torch_rows(name, args)
    print(f"Network {'-'.join(map(str, args.widths))}, MaxMin, Björck order {args.order} x {args.n_iter} "
          f"iterations per forward, multi-margin loss, Adam; batch {args.batch}, {args.dtype}; best of "
          f"{args.repeat}.\n")
    print("| backend | device | implementation | ms / step | Björck fwd+bwd | GEMMs | activations "
          "| loss + update | parts / step | Björck residual |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "bjorck" in r:
            parts = sum(r[k] for k in ("bjorck", "gemm", "activations", "loss+update"))
            share = lambda k: f"{1e3 * r[k]:.1f} ({100 * r[k] / r['total']:.0f}%)"  # noqa: E731
            cells = [share("bjorck"), share("gemm"), share("activations"), share("loss+update"),
                     f"{parts / r['total']:.2f}", f"{r['residual']:.1e}"]
        else:
            cells = ["-"] * 6
        print(f"| {r['backend']} | {r['device']} | {r['impl']} | {1e3 * r['total']:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
