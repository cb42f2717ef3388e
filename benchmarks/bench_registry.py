"""Every registry primitive timed the same way, on the inputs its record names
(``Primitive.bench_inputs``): the plain function against its limit, forward + backward, and the
usual PyTorch way where there is one.

    python benchmarks/bench_registry.py [--backend numpy cupy] [--primitive NAME ...] [--quick]

Limits: a memory-bound primitive's is a copy of its input measured in the same run; Björck's
is its model count of GEMMs times one GEMM of the same shape; spectral normalization's is 50
copies (two products with ``W`` per power step, each reading it once). "% of limit" = limit
time / measured time. The PyTorch way: ``torch.sort`` of the ``(m, n/k, k)`` view for
GroupSort, the plain order-1 loop for Björck. Primitives whose record has no ``bench_inputs``
are listed as not benchmarked. ``--quick`` uses the records' small inputs.
"""
from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the `benchmarks` package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import warnings

import reflip
from benchmarks.bench_bjorck import gemm_time, torch_bjorck
from benchmarks.common import add_backend_argument, backends, heading, ms, pct, ratio, table, timeit
from reflip._registry import REGISTRY


def _limit(name, be, x, params, t_copy):
    """Limit time of the plain function (see the module docstring)."""
    if name == "bjorck":
        m, n = sorted(x.shape[-2:], reverse=True)
        units = params.get("n_iter", 25) * (2 + (params.get("order", 1) - 1) * n / m) + 1
        return units * gemm_time(be, m, n)
    if name == "spectral_normalize":
        return 50 * t_copy
    return t_copy


def _torch_way(name, be, x, params):
    if be.torch is None:
        return None
    t = be.to_torch(x)
    if name == "group_sort":
        k = params["group_size"]
        return timeit(lambda: be.torch.sort(t.view(t.shape[0], -1, k), dim=-1), be, torch_sync=True)
    if name == "bjorck" and params.get("order", 1) == 1:
        return timeit(lambda: torch_bjorck(be.torch, t, params.get("n_iter", 25)), be, torch_sync=True)
    return None


def section(be, quick=False, primitives=None):
    print(f"### Registry primitives, {be.name} ({be.device})\n")
    rows = []
    warnings.simplefilter("ignore", reflip.BjorckConvergenceWarning)
    for name in primitives or sorted(REGISTRY):
        rec = REGISTRY[name]
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
            rows.append([name, be.name, label, "float32", ms(t_fun), pct(limit, t_fun), ms(t_fb), ratio(t_fb, t_fun),
                         ms(t_torch), ratio(t_torch, t_fun)])
    table(["primitive", "backend", "shape", "dtype", "time ms", "% of limit", "fwd+bwd ms", "fwd+bwd / time",
           "torch way ms", "x faster than torch"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backend_argument(parser)
    parser.add_argument("--primitive", nargs="+", default=None, choices=sorted(REGISTRY))
    parser.add_argument("--quick", action="store_true", help="the records' small inputs (a dry run)")
    args = parser.parse_args(argv)
    for be in backends(args.backend):
        heading(be)
        section(be, args.quick, args.primitive)


if __name__ == "__main__":
    main()
