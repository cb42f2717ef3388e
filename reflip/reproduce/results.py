"""The results folder of a reproduction: ``results.json`` (every number, the seed, the versions,
the backend and the device), ``summary.md`` (the tables) and the PNG plots.

The JSON document::

    {"reflip_reproduce": 2,                 # format version (1: one "seed", no "jobs")
     "experiment": "wasserstein" | "robustness" | "gnp",
     "mode": "tiny" | "quick" | "full", "seeds": [int...], "backend": "numpy" | "cupy",
     "device": str, "versions": {package: version}, "command": [argv...],
     "started": ISO 8601 UTC, "wall_seconds": float, "cpu_seconds": float (this process),
     "jobs": {"count": int, "cpu_seconds": float (summed over the training jobs, wherever they ran),
              "devices": [str...] (where they ran), "sweep_wall_seconds": float (every experiment
              of the command, whose jobs interleave), "retried": [job key...],
              "missing": [{"key", "error"}...]},
     "config": {...},                       # the settings actually used
     "results": {...},                      # every measured number, per seed and aggregated
     "checks": [{"name", "passed", "detail"}...],   # the expected outcomes, evaluated
     "files": [{"path", "width", "height"}...]}     # plots written beside it, pixel sizes

Non-finite floats (a diverged run) are written as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"``: strict JSON has no literal for them, and a diverged number must be reported,
not dropped.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["FORMAT_VERSION", "Run", "check_out", "environment", "jsonable", "markdown_table", "png_size"]

FORMAT_VERSION = 2
_PACKAGES = ("reflip", "numpy", "scipy", "scikit-learn", "matplotlib", "tqdm", "array-api-compat", "cupy",
             "cupy-cuda12x", "cupy-cuda13x")


def jsonable(obj):
    """``obj`` with NumPy scalars/arrays, tuples and dataclasses turned into JSON types."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return x
    if obj is None or isinstance(obj, str):
        return obj
    if callable(obj):
        return getattr(obj, "__name__", repr(obj))
    # Device arrays (CuPy) and 0-d arrays of other backends.
    try:
        from .._backend import to_numpy

        return jsonable(np.asarray(to_numpy(obj)))
    except TypeError:
        return repr(obj)


def _versions():
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(backend):
    """Versions, device and platform of this run. ``backend`` is ``"numpy"`` or ``"cupy"``."""
    if backend == "cupy":
        try:
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
            name = props["name"]
            device = f"GPU {name.decode() if isinstance(name, bytes) else name}"
        except Exception:  # noqa: BLE001 - a Dask client without a GPU gathers GPU workers' results
            device = "GPU on the workers (this host has no usable CuPy; see jobs.devices)"
    else:
        device = f"CPU {_cpu_name()} ({os.cpu_count()} logical cores visible)"
    return {"device": device, "versions": _versions(), "platform": platform.platform()}


def png_size(path):
    """``(width, height)`` in pixels of a PNG file, read from its IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _cell(v, digits):
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def markdown_table(header, rows, digits=4):
    """A GitHub Markdown table; floats with ``digits`` decimals."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def check_out(out, experiments=()):
    """Check that the results folders ``out/<experiment>`` can be created, before anything runs.

    ``TypeError`` unless ``out`` is a path (``str`` or ``os.PathLike``); ``ValueError`` naming
    ``out`` when ``out``, one of its parents or ``out/<experiment>`` exists and is not a folder,
    or when the nearest existing folder is not writable. Returns ``Path(out)``.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path (str or os.PathLike), got {out!r} ({type(out).__name__})")
    root = Path(out)
    for folder in [root, *(root / e for e in experiments)]:
        existing = folder
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent  # Path.exists is False below a file (ENOTDIR): walk up to it
        if existing.exists() and not existing.is_dir():
            raise ValueError(f"out={str(out)!r}: {str(existing)!r} exists and is not a folder; pass a folder "
                             f"(the results are written to {str(folder)!r})")
        if existing != folder and existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"out={str(out)!r}: the folder {str(existing)!r} is not writable")
    return root


class Run:
    """One reproduction's results folder ``out/experiment``.

    Fill :attr:`config`, :attr:`results`, call :meth:`check` for each expected outcome and
    :meth:`save_figure` for each plot, then :meth:`write` with the Markdown summary.
    """

    def __init__(self, experiment, *, mode, seed, backend, out, command=None):
        # seed: one seed or a list of them (every table cell is then a mean over seeds).
        self.seeds = [int(s) for s in (seed if isinstance(seed, (list, tuple)) else [seed])]
        self.experiment, self.mode, self.seed, self.backend = experiment, mode, self.seeds[0], backend
        self.jobs = {"count": 0, "cpu_seconds": 0.0, "retried": [], "missing": []}
        self.folder = check_out(out, (experiment,)) / experiment
        self.folder.mkdir(parents=True, exist_ok=True)
        self.command = list(sys.argv if command is None else command)
        self.started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        self.config, self.results, self.checks, self.files = {}, {}, [], []

    def check(self, name, passed, detail):
        """Record an expected outcome (one of the paper's empirical claims) and whether it held."""
        self.checks.append({"name": name, "passed": bool(passed), "detail": detail})
        return bool(passed)

    def save_figure(self, fig, name):
        """Write ``fig`` (a :class:`matplotlib.figure.Figure`) as ``name.png`` at its own size."""
        path = self.folder / f"{name}.png"
        fig.savefig(path)
        width, height = png_size(path)
        self.files.append({"path": path.name, "width": width, "height": height})
        return path

    def document(self):
        env = environment(self.backend)
        return jsonable({
            "reflip_reproduce": FORMAT_VERSION, "experiment": self.experiment, "mode": self.mode,
            "seeds": self.seeds, "backend": self.backend, "device": env["device"],
            "versions": env["versions"], "platform": env["platform"], "command": self.command,
            "started": self.started, "wall_seconds": time.perf_counter() - self._t0,
            "cpu_seconds": time.process_time() - self._c0, "jobs": self.jobs,
            "config": self.config, "results": self.results, "checks": self.checks, "files": self.files,
        })

    def write(self, summary):
        """Write ``results.json`` and ``summary.md`` (``summary`` plus the checks and the set-up
        line); return the folder."""
        doc = self.document()
        with open(self.folder / "results.json", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, allow_nan=False)
            f.write("\n")
        checks = "\n".join(f"- {'PASS' if c['passed'] else '**FAIL**'}: {c['name']} ({c['detail']})"
                           for c in self.checks)
        seeds = f"seed {self.seeds[0]}" if len(self.seeds) == 1 else f"seeds {', '.join(map(str, self.seeds))}"
        head = (f"# reflip reproduce {self.experiment} (--{self.mode}, {seeds})\n\n"
                f"Backend {self.backend} on {doc['device']}; reflip {doc['versions'].get('reflip', '?')}, "
                f"numpy {doc['versions'].get('numpy', '?')}. Training jobs: {self.jobs['count']}, "
                f"{self.jobs['cpu_seconds']:.1f} s CPU (summed over the jobs, wherever they ran); the sweep of "
                f"this command took {self.jobs.get('sweep_wall_seconds', 0.0):.1f} s wall clock; this "
                f"report {doc['wall_seconds']:.1f} s wall clock and {doc['cpu_seconds']:.1f} s CPU.\n")
        body = [head, summary.strip() + "\n"]
        if self.jobs["missing"]:
            body.append("## Missing results\n\nThese jobs failed twice; the tables and checks above use the "
                        "other seeds or leave the cell out:\n\n"
                        + "\n".join(f"- `{m['key']}`: {m['error']}" for m in self.jobs["missing"]) + "\n")
        if checks:
            body.append("## Expected outcomes\n\n" + checks + "\n")
        with open(self.folder / "summary.md", "w", encoding="utf-8") as f:
            f.write("\n".join(body))
        return self.folder
