"""The sweep engine of ``reflip reproduce``: every (experiment, task, model, seed) training run
is an independent :class:`Job`, executed serially, in ``--jobs N`` local processes, or on a
Dask distributed cluster (``--scheduler ADDRESS``), and gathered back into one results folder.

A job is a pure function of its key and the run's :class:`Settings`: its data, initialisation
and batch order all come from :func:`.common.seed_for` of the seed and the names in its key,
so where it runs does not change its numbers (bit for bit on the same machine type with one
BLAS thread; the tests compare a serial run with a two-worker cluster).

Failures: a job that raises, or whose worker dies (a lost Dask worker, a killed local
process), is reported with its key on stderr and retried once, after the first round. A job
that fails twice is recorded in :class:`Outcome.failures`; the other jobs' results are kept, and
each experiment's summary lists what is missing.
"""
from __future__ import annotations

import sys
import time
import traceback

from . import gnp, robustness, wasserstein
from .common import Context
from .job import Job, Outcome, Settings
from .results import environment

__all__ = ["Job", "Settings", "Outcome", "execute", "run_job", "EXPERIMENT_MODULES"]

#: The module of each experiment: ``jobs(settings, seeds, tasks)``, ``run_job(ctx, job,
#: settings)`` and ``report(out, settings, seeds, outcome, command, tasks)``.
EXPERIMENT_MODULES = {"wasserstein": wasserstein, "robustness": robustness, "gnp": gnp}


def run_job(settings, job):
    """Run one job in this process and return its result (a dict of numbers and NumPy arrays).

    The worker-side entry point: a module-level function, so that local processes and Dask
    workers import it by name.
    """
    ctx = Context(mode=settings.mode, seed=job.seed, backend=settings.backend, dtype=settings.dtype,
                  progress=settings.progress, threads=settings.threads)
    c0 = time.process_time()
    with ctx.blas_threads():
        result = EXPERIMENT_MODULES[job.experiment].run_job(ctx, job, settings)
    result["job_cpu_seconds"] = time.process_time() - c0
    result["device"] = environment(settings.backend)["device"]
    return result


def _describe(exc):
    """One line: the exception's type and message, and where it was raised."""
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _done(progress, key, count):
    if progress:
        count[0] += 1
        print(f"reflip reproduce: {key} done ({count[0]}/{count[1]})", file=sys.stderr)


def _report(key, error, attempt, final):
    tail = "given up: its results are missing from the summary" if final else "retrying once"
    print(f"reflip reproduce: job {key} failed (attempt {attempt}): {error}; {tail}", file=sys.stderr)


def _serial(fn, settings, jobs, outcome, errors):
    for job in jobs:
        try:
            outcome.results[job.key] = fn(settings, job)
        except Exception as exc:  # any failure of a job is reported, never fatal to the sweep
            errors[job.key] = _describe(exc)


def _processes(fn, settings, jobs, outcome, errors, n_jobs, progress, count, isolated=False):
    """``jobs`` in a pool of ``n_jobs`` processes, or each in its own process (``isolated``).

    A process that dies breaks its whole pool (``BrokenProcessPool``): every job still pending
    there fails with it. The retry round therefore runs each job in a pool of its own, so that
    a job that kills its process again takes no other job down with it.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a fresh interpreter per worker, no forked BLAS or thread state.
    context = multiprocessing.get_context("spawn")
    groups = [[job] for job in jobs] if isolated else [jobs]
    for group in groups:
        with ProcessPoolExecutor(max_workers=1 if isolated else n_jobs, mp_context=context) as pool:
            futures = {pool.submit(fn, settings, job): job.key for job in group}
            for future in as_completed(futures):
                key = futures[future]
                try:
                    outcome.results[key] = future.result()
                    _done(progress, key, count)
                except Exception as exc:  # includes BrokenProcessPool: a worker died
                    errors[key] = _describe(exc)


def _dask(fn, settings, jobs, outcome, errors, client, attempt, progress, count):
    from distributed import as_completed

    # pure=False and a per-attempt key: a retry is a new task, never a cached failure.
    futures = {client.submit(fn, settings, job, key=f"{job.key}#{attempt}", pure=False): job.key for job in jobs}
    for future in as_completed(list(futures)):
        key = futures[future]
        if future.status == "finished":
            outcome.results[key] = future.result()
            _done(progress, key, count)
        else:
            exc = future.exception()  # KilledWorker when its worker was lost
            errors[key] = _describe(exc)
        future.release()


def execute(jobs, settings, *, n_jobs=1, scheduler=None, fn=run_job, progress=False):
    """Run ``jobs`` (a list of :class:`Job`) and return an :class:`Outcome`.

    Parameters
    ----------
    jobs : list of Job
    settings : Settings
    n_jobs : int >= 1
        Local processes (1: this process, in order).
    scheduler : str or distributed.Client or None
        A Dask scheduler address (``tcp://host:8786``) or a connected client: the jobs go to
        that cluster's workers instead (``n_jobs`` is then ignored).
    fn : callable ``(settings, job) -> result``
        The job runner (:func:`run_job`); the tests plant failing ones.
    progress : bool
        A line on stderr as each job finishes (parallel runs: the jobs draw no progress bars).
    """
    outcome, pending, client, own_client = Outcome(), list(jobs), None, False
    t0 = time.perf_counter()
    count = [0, len(pending)]
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise RuntimeError("--scheduler needs Dask: pip install 'reflip[distributed]'") from exc
        if isinstance(scheduler, Client):
            client = scheduler
        else:
            client, own_client = Client(scheduler), True
    try:
        for attempt in (1, 2):
            if not pending:
                break
            errors = {}
            if client is not None:
                _dask(fn, settings, pending, outcome, errors, client, attempt, progress, count)
            elif n_jobs > 1 and len(pending) > 1:
                _processes(fn, settings, pending, outcome, errors, n_jobs, progress, count, isolated=attempt == 2)
            else:
                _serial(fn, settings, pending, outcome, errors)
            for key, error in errors.items():
                _report(key, error, attempt, final=attempt == 2)
            if attempt == 1:
                outcome.retried = list(errors)
            else:
                outcome.failures = errors
            pending = [job for job in pending if job.key in errors]
    finally:
        if own_client:
            client.close()
    outcome.wall_seconds = time.perf_counter() - t0
    return outcome
