"""Benchmark of the universality construction [UN-8] [UN-10] [UN-11]: ``approximate`` of a
1-Lipschitz function on the unit square for shrinking delta, i.e. growing delta-nets (up to
400 = 20 x 20 and 441 = 21 x 21 points), with the network's size (depth, widths, stored numbers, parameters of
the same network with dense layers), the build time, the evaluation time and the measured
errors (at the net points, and the sup error on samples against 2 delta).

Standalone: ``python benchmarks/bench_universality.py [--p P] [--samples M]`` prints a
Markdown table. NumPy, float64; evaluation in chunks of 32 inputs (one chunk of the first
hidden layer of the 441-point network is 32 x 194,040 floats, 50 MB).
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import reflip.universality as U


def target(p):
    """Distance to three points, 1-Lipschitz in l_p."""
    centres = np.array([[0.2, 0.3], [0.8, 0.7], [0.5, 0.05]])
    return lambda x: np.min(np.linalg.norm(x[:, None] - centres[None], ord=p, axis=-1), axis=1)


def evaluate(net, x, chunk=32):
    return np.concatenate([net(x[s:s + chunk]) for s in range(0, x.shape[0], chunk)])[:, 0]


def run(p=2.0, deltas=(0.2, 0.1, 0.06, 0.045, 0.038, 0.036), samples=2000, seed=0):
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", default="2", help="1, 2 or inf")
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args(argv)
    p = U.check_p(args.p if args.p == "inf" else float(args.p))
    rows = run(p=p, samples=args.samples)
    print(f"universality construction, p = {p:g}, unit square, f = distance to 3 points "
          f"(Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()})\n")
    print("| net points N | delta | depth | first width | stored numbers | dense parameters | build (s) "
          "| eval (ms / input) | max error at net | sup error / delta | max constraint norm |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n_pts, delta, depth, width, stored, dense, build, per_input, err_net, err_ratio, norm in rows:
        print(f"| {n_pts} | {delta:g} | {depth} | {width:,} | {stored:,} | {dense:.3g} | {build:.3f} "
              f"| {per_input:.2f} | {err_net:.2g} | {err_ratio:.3f} | {norm:.17g} |")
    size = U.interpolant_size(400, 2)
    print(f"\nGrowth [UN-11]: N points give depth 1 + ceil(log2(N-1)) + ceil(log2 N), first width "
          f"~N^2, stored ~N^2 (n + 2), dense parameters ~(2/3) N^4 (N = 400: depth {size.depth}, "
          f"first width {size.widths[0]:,}, stored {size.stored:,}, dense {size.dense_parameters:.3g}).")


if __name__ == "__main__":
    main()
