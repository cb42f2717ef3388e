"""One-command benchmark of reflip's primitives against their limits and the usual PyTorch way:
the per-area sections of the bench_<module>.py files, composed.

    python -m benchmarks.run [--backend numpy cupy] [--quick] [--sections ...]
    python benchmarks/run.py ...                       (the same, run as a file)

Sections (all by default), each printing Markdown tables:

``registry``      every registry primitive on its ``bench_inputs`` (bench_registry.py);
``groupsort``     GroupSort k in {2, 4, 8, 16, 32, n}: forward, forward with residuals, forward +
                  backward against the copy bandwidth, the backend's sort of the ``(m, n/k, k)``
                  view, the obvious argsort code and ``torch.sort``; memory layouts
                  (bench_groupsort.py);
``bjorck``        Björck order 1, 25 steps: forward against the GEMM rate, the backward modes,
                  TF32-mixed (CuPy), a batch of 512 matrices 64 x 64, the plain PyTorch loop
                  (bench_bjorck.py);
``projection``    l_inf projection [PR-3] of a square matrix: rows/s against a plain sort
                  (bench_projections.py);
``scaling``       time against size for every primitive family, normalised by the expected
                  growth (GroupSort linear, projection n log n per row, Björck cubic);
``memory``        peak memory of Björck's forward + backward with and without checkpointing;
``nn``            one training step of the paper's robust-MNIST classifier (bench_nn.py);
``universality``  the universality construction's size and cost (bench_universality.py; NumPy).

``--quick`` shrinks every size (a dry run: seconds on a CPU). The timing rules are those of
benchmarks/common.py.
"""
from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the `benchmarks` package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

from benchmarks import bench_bjorck, bench_groupsort, bench_nn, bench_projections, bench_registry, bench_universality
from benchmarks.common import add_backend_argument, backends, heading, table


def scaling_section(be, quick):
    print(f"### Scaling, {be.name} ({be.device})\n")
    rows = [*bench_groupsort.scaling_rows(be, quick), *bench_projections.scaling_rows(be, quick),
            *bench_bjorck.scaling_rows(be, quick)]
    table(["primitive", "shape", "ms", "time / expected growth"], rows)


def nn_section(be, quick):
    args = bench_nn.parser().parse_args(["--torch"] if be.torch is not None else [])
    bench_nn.section(be, quick, args)


SECTIONS = {
    "registry": bench_registry.section,
    "groupsort": bench_groupsort.section,
    "bjorck": bench_bjorck.section,
    "projection": bench_projections.section,
    "scaling": scaling_section,
    "memory": bench_bjorck.memory_section,
    "nn": nn_section,
    "universality": bench_universality.section,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backend_argument(parser)
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="small sizes (a dry run)")
    args = parser.parse_args(argv)
    for be in backends(args.backend):
        heading(be)
        for name in args.sections:
            SECTIONS[name](be, args.quick)


if __name__ == "__main__":
    main()
