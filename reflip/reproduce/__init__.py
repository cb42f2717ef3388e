"""``reflip reproduce``: the paper's experiments, re-run with reflip's networks.

- :mod:`.wasserstein`: Wasserstein-1 estimation by Björck-constrained critics (ReLU, MaxMin,
  GroupSort, FullSort) on the paper code's tasks (W1 = 1 by construction) and on pairs of
  finite clouds whose W1 is computed exactly (:mod:`.ot`).
- :mod:`.robustness`: certified robustness on scikit-learn's 8x8 digits (l_inf-projected and
  Björck MaxMin networks against an unconstrained ReLU baseline).
- :mod:`.gnp`: gradient-norm preservation and unit activity of trained networks.

Each writes ``OUT/<experiment>/results.json``, ``summary.md`` and PNG plots (:mod:`.results`,
:mod:`.plotting`). Modes: ``"quick"`` (minutes on a 2-core CPU), ``"full"`` (the paper code's
schedules) and ``"tiny"`` (seconds, for CI).
"""
from __future__ import annotations

__all__ = ["EXPERIMENTS", "run_experiments"]

EXPERIMENTS = ("wasserstein", "robustness", "gnp")


def run_experiments(experiment, *, mode="quick", seed=0, backend="numpy", out="reflip-results", dtype="float32",
                    threads=None, tasks=None, progress=True, command=None):
    """Run one experiment (or ``"all"``) and return the list of results folders.

    ``threads=None`` limits the host BLAS to one thread with NumPy in the tiny and quick modes
    (small products; see :meth:`.common.Context.blas_threads`) and leaves it alone otherwise. ``tasks`` selects
    Wasserstein tasks (``abs``, ``cones``, ``cone128``, ``gmm_square``, ``gauss16``).
    """
    import importlib.util

    missing = [m for m in ("scipy", "sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(f"reflip reproduce needs {missing}: pip install 'reflip[reproduce]'")
    from . import gnp, robustness, wasserstein
    from .common import Context
    from .tasks import wasserstein_tasks

    names = EXPERIMENTS if experiment == "all" else (experiment,)
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiment {experiment!r}; expected one of {EXPERIMENTS + ('all',)}")
    if threads is None and backend == "numpy" and mode != "full":
        threads = 1
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if tasks is not None:
        if "wasserstein" not in names:
            raise ValueError("tasks selects Wasserstein tasks: use it with the wasserstein experiment")
        wasserstein_tasks(tasks)  # unknown names fail here, before anything runs
    ctx = Context(mode=mode, seed=seed, backend=backend, dtype=dtype, progress=progress, threads=threads)
    runners = {"wasserstein": lambda: wasserstein.run(ctx, out, tasks=tasks, command=command),
               "robustness": lambda: robustness.run(ctx, out, command=command),
               "gnp": lambda: gnp.run(ctx, out, command=command)}
    return [runners[name]() for name in names]
