"""What the three reproductions share: the backend, seeds, the learning-rate schedule, the
network builders and host read-back."""
from __future__ import annotations

import contextlib
import math
import time
import zlib
from dataclasses import dataclass

import numpy as np

from .._backend import host

__all__ = ["Context", "BACKENDS", "milestone_schedule", "seed_for", "build_mlp", "host", "cast_params"]

BACKENDS = ("numpy", "cupy")


def _namespace(backend):
    if backend == "numpy":
        return np
    if backend == "cupy":
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError(
                "--backend cupy needs CuPy and a CUDA GPU: pip install cupy-cuda12x (CUDA 12) or "
                f"cupy-cuda13x (CUDA 13); import failed: {exc}") from exc
        return cupy
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


@dataclass
class Context:
    """A reproduction's settings: ``mode`` ("tiny", "quick" or "full"), ``seed``, the array
    module ``xp`` of ``backend``, the training ``dtype`` (evaluations run in float64),
    ``progress`` bars on or off, and ``threads`` (BLAS threads on the host; ``None``: the
    library's default)."""

    mode: str
    seed: int
    backend: str = "numpy"
    dtype: str = "float32"
    progress: bool = True
    threads: int | None = None

    def __post_init__(self):
        from .tasks import MODES

        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        self.xp = _namespace(self.backend)

    def asarray(self, a, dtype=None):
        """A host array on this backend, in the training dtype (or ``dtype``)."""
        return self.xp.asarray(np.asarray(a), dtype=getattr(self.xp, dtype or self.dtype))

    @contextlib.contextmanager
    def blas_threads(self):
        """Limit the host BLAS to ``threads`` threads for the duration (restored after).

        The quick and tiny networks' products (widths up to 256) gain little from threads, and
        on a shared 2-core machine OpenBLAS's spinning threads slowed a Björck-constrained
        training step about twentyfold in our measurements (28 ms with one thread, 654 ms
        with the default); :func:`reflip.reproduce.run_experiments` picks one thread for NumPy
        outside ``--full``.
        """
        if self.threads is None:
            yield
            return
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads, user_api="blas"):
            yield

    def note(self, text):
        """One line on stderr beside the progress bars (nothing without them)."""
        if self.progress:
            import sys

            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)

    def synchronize(self):
        """Wait for queued device work (timings of an asynchronous GPU backend)."""
        if self.backend == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


def seed_for(seed, *names):
    """A 32-bit seed derived from the run's ``seed`` and names (task, model...): independent
    streams per name, stable across runs and Python versions (CRC32, not ``hash``)."""
    words = [int(seed)] + [zlib.crc32(str(n).encode()) for n in names]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def milestone_schedule(lr0, decay, milestones):
    """``step -> lr0 * decay ** #{m in milestones : m <= step}`` (PyTorch's MultiStepLR on
    steps; the paper's code decays per epoch, converted to steps in :mod:`.tasks`)."""
    milestones = tuple(sorted(int(m) for m in milestones))

    def schedule(step):
        return lr0 * decay ** sum(1 for m in milestones if m <= step)

    schedule.__name__ = f"milestones(lr0={lr0}, decay={decay}, at={list(milestones)})"
    return schedule


def build_mlp(in_features, widths, activation, constraint, *, group_size=None, scale=None, **options):
    """``Dense -> activation -> ... -> Dense`` (``widths`` are the Dense outputs, the last one
    the output width), every Dense with ``constraint`` and ``options``, then an optional
    :class:`~reflip.nn.Scale`."""
    from .. import nn

    layers, width = [], in_features
    for i, out in enumerate(widths):
        layers.append(nn.Dense(width, out, constraint, **options))
        if i < len(widths) - 1:
            layers.append(nn.Activation(activation, group_size) if activation == "group_sort"
                          else nn.Activation(activation))
        width = out
    if scale is not None and scale != 1.0:
        layers.append(nn.Scale(scale))
    return nn.Sequential(layers)


def cast_params(params, xp, dtype):
    """A copy of a parameter list in another dtype (evaluations run in float64)."""
    return [{k: xp.astype(v, getattr(xp, dtype)) for k, v in p.items()} for p in params]


class Timer:
    """``with Timer(ctx) as t: ...``; after the block ``t.seconds`` (wall clock, device
    synchronized) and ``t.cpu_seconds`` (this process's CPU time: on a shared machine the wall
    clock includes waiting for other processes, the CPU time does not)."""

    def __init__(self, ctx):
        self.ctx, self.seconds, self.cpu_seconds = ctx, math.nan, math.nan

    def __enter__(self):
        self.ctx.synchronize()
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.ctx.synchronize()
        self.seconds = time.perf_counter() - self._t0
        self.cpu_seconds = time.process_time() - self._c0
        return False
