"""Benchmark of the universality construction [UN-8] [UN-10] [UN-11]: ``approximate`` of a
1-Lipschitz function on the unit square for shrinking delta, i.e. growing delta-nets (up to
400 = 20 x 20 and 441 = 21 x 21 points), with the network's size (depth, widths, stored numbers, parameters of
the same network with dense layers), the build time, the evaluation time and the measured
errors (at the net points, and the sup error on samples against 2 delta).

    python benchmarks/bench_universality.py [--p 2|1|inf] [--samples M] [--quick]

prints a Markdown table. NumPy, float64; evaluation in chunks of 32 inputs (one chunk of the
first hidden layer of the 441-point network is 32 x 194,040 floats, 50 MB). ``--quick``: the two
largest deltas only (25 and 81 points for p = 2) and 200 samples.
"""
from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the `benchmarks` package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import math
import time

import numpy as np

import reflip.universality as U
from benchmarks.common import table, versions

DELTAS = (0.2, 0.1, 0.06, 0.045, 0.038, 0.036)


def target(p):
    """Distance to three points, 1-Lipschitz in l_p."""
    centres = np.array([[0.2, 0.3], [0.8, 0.7], [0.5, 0.05]])
    return lambda x: np.min(np.linalg.norm(x[:, None] - centres[None], ord=p, axis=-1), axis=1)


def evaluate(net, x, chunk=32):
    return np.concatenate([net(x[s:s + chunk]) for s in range(0, x.shape[0], chunk)])[:, 0]


def run(p=2.0, deltas=DELTAS, samples=2000, seed=0):
    f = target(p)
    box = (np.zeros(2), np.ones(2))
    xs = np.random.default_rng(seed).uniform(0, 1, (samples, 2))
    rows = []
    for delta in deltas:
        start = time.perf_counter()
        result = U.approximate(f, box, delta, p)
        build = time.perf_counter() - start
        net = result.network
        start = time.perf_counter()
        at_net = evaluate(net, result.points)
        at_samples = evaluate(net, xs)
        seconds = time.perf_counter() - start
        per_input = 1000 * seconds / (result.points.shape[0] + samples)
        size = result.size
        first, later = net.constraint_norms(p)
        rows.append((result.n_points, delta, size.depth, size.widths[0], size.stored, size.dense_parameters,
                     build, per_input, float(np.max(np.abs(at_net - result.values))),
                     float(np.max(np.abs(at_samples - f(xs)))) / delta, max(first, later)))
    return rows


def section(be=None, quick=False, p=2.0, samples=None):
    """The construction's table (NumPy only: ``be`` is accepted for benchmarks/run.py and
    must be NumPy's)."""
    if be is not None and be.gpu:
        print("### Universality construction: NumPy only, skipped on " + be.name + "\n")
        return
    samples = samples or (200 if quick else 2000)
    rows = run(p=p, deltas=DELTAS[:2] if quick else DELTAS, samples=samples)
    print(f"### Universality construction, p = {p:g}, unit square, f = distance to 3 points, float64\n")
    table(["net points N", "delta", "depth", "first width", "stored numbers", "dense parameters", "build (s)",
           "eval (ms / input)", "max error at net", "sup error / delta", "max constraint norm"],
          [[n_pts, f"{delta:g}", depth, f"{width:,}", f"{stored:,}", f"{dense:.3g}", f"{build:.3f}",
            f"{per_input:.2f}", f"{err_net:.2g}", f"{err_ratio:.3f}", f"{norm:.17g}"]
           for n_pts, delta, depth, width, stored, dense, build, per_input, err_net, err_ratio, norm in rows],
          align="r" * 11)
    size = U.interpolant_size(400, 2)
    print(f"Growth [UN-11]: N points give depth 1 + ceil(log2(N-1)) + ceil(log2 N), first width "
          f"~N^2, stored ~N^2 (n + 2), dense parameters ~(2/3) N^4 (N = 400: depth {size.depth}, "
          f"first width {size.widths[0]:,}, stored {size.stored:,}, dense {size.dense_parameters:.3g}).\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--p", default="2", choices=["1", "2", "inf"])
    parser.add_argument("--samples", type=int, default=None, help="uniform samples for the sup error (default 2000)")
    parser.add_argument("--quick", action="store_true", help="the two largest deltas only (a dry run)")
    args = parser.parse_args(argv)
    print(f"## numpy — {versions()}\n")
    section(None, args.quick, p=math.inf if args.p == "inf" else float(args.p), samples=args.samples)


if __name__ == "__main__":
    main()
