"""reflip's benchmarks: one module per area (``bench_<module>.py``), each runnable on its own,
sharing the harness of :mod:`benchmarks.common`; :mod:`benchmarks.run` composes their sections.

Run them from the repository root either way (see benchmarks/README.md)::

    python -m benchmarks.run --quick
    python benchmarks/run.py --quick
"""
