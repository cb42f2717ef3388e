"""The harness every benchmark shares: backend selection, device synchronisation, timing and
Markdown tables.

Timing rules (the reasons are in benchmarks/README.md):

- the **best** of several rounds after a warm-up: on a shared machine other jobs only ever make
  a round slower;
- functions compared with each other are timed in **alternating rounds** (:func:`measure` with
  several functions), so that a slow period of the machine slows all of them and their ratio
  holds;
- every :class:`Timing` also keeps the **range** (best and worst round), which says how much a
  figure can be trusted;
- on a GPU a round queues several calls between two synchronisations and counts their mean, so
  that the Python overhead of a call (tens of microseconds) overlaps the device work the way it
  does in a training loop; every round ends with a device synchronisation.
"""
from __future__ import annotations

import datetime
import math
import platform
import time
from dataclasses import dataclass

import numpy as np

import reflip

BACKENDS = ("numpy", "cupy")


class Backend:
    """One array backend: ``xp``, its device synchronisation and, when PyTorch imports (and
    sees the GPU for ``cupy``), the matching torch device for the "PyTorch way" columns.

    PyTorch is optional and deliberately not in the ``bench`` extra (pyproject.toml): its CPU
    build has to be chosen by hand."""

    def __init__(self, name, *, torch=True):
        if name not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
        self.name = name
        if name == "numpy":
            self.xp, self.gpu = np, False
            self.device = platform.processor() or platform.machine()
            self._sync = None
        else:
            import cupy

            self.xp, self.gpu = cupy, True
            self._sync = cupy.cuda.Device().synchronize
            self.device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        self.torch, self.tdev = _torch(self.gpu) if torch else (None, None)

    def sync(self):
        if self._sync is not None:
            self._sync()

    def tsync(self):
        """Synchronise PyTorch's device (its CUDA stream is not CuPy's)."""
        if self.torch is not None and self.gpu:
            self.torch.cuda.synchronize()

    def asarray(self, a):
        return self.xp.asarray(a)

    def normal(self, shape, seed=0, dtype=np.float32):
        """Standard normal entries drawn on the host (the same numbers on every backend)."""
        return self.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype))

    def to_torch(self, a):
        return None if self.torch is None else self.torch.from_dlpack(a)

    def copy_time(self, x):
        """Best time of one copy of ``x`` into a preallocated array: the memory-bound limit."""
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


def backends(names=None, *, torch=True):
    """The :class:`Backend` of each name; ``None``: NumPy, plus CuPy when it imports and sees a
    GPU."""
    if names is not None:
        return [Backend(name, torch=torch) for name in names]
    out = [Backend("numpy", torch=torch)]
    try:
        out.append(Backend("cupy", torch=torch))
    except Exception:  # CuPy absent, or no device: NumPy only
        pass
    return out


def add_backend_argument(parser, default=("numpy",)):
    parser.add_argument("--backend", nargs="+", default=list(default) if default else None, choices=BACKENDS,
                        help="array backends to time" + ("" if default else " (default: numpy, and cupy with a GPU)"))


# ----------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the best round and the worst (the range of the rounds)."""

    best: float
    worst: float
    rounds: int

    def __float__(self):
        return self.best


def _inner(fn, sync, gpu):
    """Calls per round: one on a CPU; on a GPU enough to fill about 20 ms (at most 20)."""
    fn()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    one = time.perf_counter() - start
    return max(1, min(20, int(0.02 / max(one, 1e-7)))) if gpu else 1


def measure(fns, be, *, repeat=5, budget=1.5, torch_sync=False):
    """Time every function of ``fns`` (a dict name -> callable) in alternating rounds.

    Each function is warmed up, then rounds run until every function has ``repeat`` rounds or
    ``budget`` seconds are spent (at least 2 rounds each); the order alternates between
    rounds. Returns a dict name -> :class:`Timing`."""
    sync = be.tsync if torch_sync else be.sync
    inner = {name: _inner(fn, sync, be.gpu) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    names = list(fns)
    spent, rounds = 0.0, 0
    while rounds < 2 or (rounds < repeat and spent < budget):
        for name in names if rounds % 2 == 0 else reversed(names):
            fn, n = fns[name], inner[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            sync()
            t = time.perf_counter() - start
            times[name].append(t / n)
            spent += t
        rounds += 1
    return {name: Timing(min(ts), max(ts), len(ts)) for name, ts in times.items()}


def timeit(fn, be, *, repeat=5, budget=1.5, torch_sync=False):
    """Best time of one call of ``fn`` (seconds; :func:`measure` of one function)."""
    return measure({"fn": fn}, be, repeat=repeat, budget=budget, torch_sync=torch_sync)["fn"].best


def timeit_pair(fa, fb, be, *, repeat=9, budget=math.inf):
    """Best times of ``fa`` and ``fb`` in alternating rounds (for a ratio of the two)."""
    t = measure({"a": fa, "b": fb}, be, repeat=repeat, budget=budget)
    return t["a"].best, t["b"].best


# ----------------------------------------------------------------------------------------------
# Formatting


def ms(t):
    """Milliseconds with three significant-ish digits; "-" for a missing figure."""
    if t is None:
        return "-"
    t = float(t)
    return f"{1e3 * t:.3f}" if t < 0.01 else f"{1e3 * t:.2f}" if t < 1 else f"{1e3 * t:.0f}"


def ms_range(timing):
    """``best-worst`` round of a :class:`Timing`, in milliseconds."""
    return "-" if timing is None else f"{ms(timing.best)}-{ms(timing.worst)}"


def pct(limit, t):
    """``limit / t`` as a percentage: how close a measured time comes to its limit."""
    return "-" if limit is None or t is None else f"{100 * float(limit) / float(t):.0f}%"


def ratio(a, b):
    return "-" if a is None or b is None else f"{float(a) / float(b):.2f}"


def table(header, rows, *, align=None):
    """Print a Markdown table (``align``: one of "l", "r" per column; default left)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "".join("---:|" if a == "r" else "---|" for a in (align or ["l"] * len(header))))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |", flush=True)
    print()


def versions(be=None):
    """``reflip x, numpy y[, cupy z][, torch w (device)]``."""
    out = f"reflip {reflip.__version__}, numpy {np.__version__}, Python {platform.python_version()}"
    if be is not None and be.gpu:
        out += f", cupy {be.xp.__version__}"
    if be is not None and be.torch is not None:
        out += f", torch {be.torch.__version__} ({be.tdev})"
    return out


def heading(be, level=2):
    """The line that dates a run: backend, device, date, versions."""
    print(f"{'#' * level} {be.name} on {be.device} — {datetime.date.today()}; {versions(be)}\n")


def parse_shapes(values):
    """``["4096x1024", ...]`` -> ``[(4096, 1024), ...]``."""
    out = []
    for s in values:
        try:
            out.append(tuple(int(v) for v in s.lower().split("x")))
        except ValueError:
            raise SystemExit(f"a shape is MxN (e.g. 4096x1024), got {s!r}") from None
    return out
