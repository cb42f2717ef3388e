"""Running the suite on an implementation: the library call, the report, expected failures and
the ``parametrize_with_checks``-style decorator.

    from reflip.audit import check_implementation
    report = check_implementation(MyAdapter())
    assert report.ok, report.to_markdown()

or, one test per check in your own suite::

    from reflip.audit import parametrize_with_checks

    @parametrize_with_checks(MyAdapter())
    def test_reflip_claims(check):
        check()
"""
from __future__ import annotations

import os
import pickle
import platform
from dataclasses import dataclass, field

import numpy as np

from .._registry import REGISTRY
from .._validate import check_int
from ..testing.backends import DTYPES, available_backends
from .adapter import AdapterImpl
from .engine import PROFILES, STATUSES, ClaimResult, claims_for, run_claim

__all__ = ["check_implementation", "parametrize_with_checks", "read_xfails", "Report", "Check",
           "iter_checks", "hypothesis_settings"]


def hypothesis_settings(profile, shrink=True):
    """Settings of a profile; ``shrink=False`` reports the first failing case as found (a
    verdict without the minimal case, several times faster on a failing implementation)."""
    from hypothesis import Phase, settings

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    phases = tuple(Phase) if shrink else tuple(p for p in Phase if p is not Phase.shrink)
    return settings(max_examples=PROFILES[profile], derandomize=profile != "thorough",
                    database=None, deadline=None, phases=phases)


def read_xfails(path):
    """Expected failures: one check id per line (``group_sort.lipschitz``, or with a dtype
    ``group_sort.lipschitz[float32]``); the comment lines above an id are its reason."""
    xfails, reason = {}, []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line:
                reason = []
            elif line.startswith("#"):
                reason.append(line.lstrip("#").strip())
            else:
                if not reason:
                    raise ValueError(f"{path}: expected failure {line!r} has no reason above it")
                xfails[line] = " ".join(reason)
                reason = []
    return xfails


@dataclass
class Check:
    """One check: a claim on one implementation, backend and dtype."""

    claim: object
    impl: object
    backend: object
    dtype: str
    xfail_reason: str | None = None

    @property
    def id(self):
        return f"{self.claim.id}[{self.backend.name}-{self.dtype}]"

    def run(self, settings, timeout=None) -> ClaimResult:
        result = run_claim(self.claim, self.impl, self.backend, self.dtype, settings=settings, timeout=timeout)
        result.implementation = getattr(self.impl, "label", "reflip")
        if self.xfail_reason is not None and result.status in ("pass", "fail"):
            result.reason = self.xfail_reason
            result.status = "xfail" if result.status == "fail" else "xpass"
        return result

    def __call__(self, profile="quick", timeout=None):
        """Run as a test: raise ``AssertionError`` with the report of a failure; pytest's
        ``xfail`` for an expected failure."""
        result = self.run(hypothesis_settings(profile), timeout)
        if result.status == "xfail":
            import pytest

            pytest.xfail(result.reason)
        if result.status in ("not provided", "not applicable"):
            import pytest

            pytest.skip(f"{result.status}: {result.reason}")
        if result.status in ("fail", "xpass"):
            raise AssertionError(_failure_text(result))
        return result


def _xfail_for(xfails, claim, dtype):
    return xfails.get(f"{claim.id}[{dtype}]", xfails.get(claim.id))


def iter_checks(adapter=None, *, primitives=None, backends=None, dtypes=DTYPES, xfails=None):
    """The checks of the suite for ``adapter`` (``None``: reflip itself, on every available
    backend; an adapter runs on NumPy arrays)."""
    xfails = xfails or {}
    names = list(primitives or sorted(REGISTRY))
    unknown = sorted(set(names) - set(REGISTRY))
    if unknown:
        raise ValueError(f"unknown primitive(s) {unknown}; registered: {sorted(REGISTRY)}")
    if backends is None:
        backends = available_backends() if adapter is None else available_backends(("numpy",))
    for name in names:
        impl = REGISTRY[name] if adapter is None else AdapterImpl(adapter, name)
        for claim in claims_for(name):
            if claim.reference and adapter is None:
                continue  # reflip against itself could not fail
            for backend in backends:
                if claim.applies_to(backend):
                    for dtype in dtypes:
                        yield Check(claim, impl, backend, dtype, _xfail_for(xfails, claim, dtype))


#: The statuses of a check that actually ran on the implementation ("not provided" and "not
#: applicable" checks ran nothing).
RAN = ("pass", "fail", "xfail", "xpass")


@dataclass
class Report:
    """The results of a run of the suite.

    ``ok``: no check failed (and no expected failure passed). ``checked``: how many checks
    actually ran. An implementation that provides only some primitives is checked on those: the
    others are reported "not provided" and do not change ``ok``. When nothing at all ran
    (``checked == 0``: no primitive provided, or every check not applicable), ``ok`` alone
    would be vacuous: ``reflip audit`` then exits with status 2 and says so, and a test should
    assert ``report.ok and report.checked``.
    """

    implementation: str
    profile: str
    results: list = field(default_factory=list)

    def count(self, status):
        return sum(r.status == status for r in self.results)

    @property
    def ok(self):
        return not any(r.status in ("fail", "xpass") for r in self.results)

    @property
    def checked(self):
        """Number of checks that ran on the implementation (passed, failed, xfail or xpass)."""
        return sum(r.status in RAN for r in self.results)

    def nothing_checked_reason(self):
        """``None`` when some check ran; otherwise one line saying why none did."""
        if self.checked:
            return None
        if not self.results:
            return "no check was selected (see --primitive, --check and --dtype)"
        counts = f"{self.count('not provided')} checks not provided, {self.count('not applicable')} not applicable"
        # Nothing ran: a primitive with a "not provided" check is missing (its remaining checks
        # can be "not applicable" only because the harness could not ask it for its conventions).
        missing = {r.claim.primitive for r in self.results if r.status == "not provided"}
        provided = {r.claim.primitive for r in self.results} - missing
        if not provided:
            return (f"{self.implementation} provides none of the selected primitives ({counts}); see "
                    f"reflip.audit.adapter for the protocol")
        return f"every check of {sorted(provided)} is not applicable to {self.implementation} ({counts})"

    def summary(self):
        parts = [f"{self.count(s)} {s}" for s in STATUSES if self.count(s)]
        return (f"reflip audit of {self.implementation}: {len(self.results)} checks, {', '.join(parts) or 'none'} "
                f"(profile {self.profile}: {PROFILES[self.profile]} cases each; Python {platform.python_version()}, "
                f"numpy {np.__version__})")

    def to_summary(self):
        """The compact terminal view: one row per claim, one column per backend x dtype (pass,
        FAIL, XPASS, xfail, n/a for not applicable, n/p for not provided), then each failure in
        one line with its cause. The full per-case table is :meth:`to_markdown`."""
        columns = list(dict.fromkeys(f"{r.backend} {r.dtype}" for r in self.results))
        cells, labels = {}, {}
        for r in self.results:
            cells.setdefault(r.claim.id, {})[f"{r.backend} {r.dtype}"] = _CELL[r.status]
            labels[r.claim.id] = r.claim.label
        lines = [self.summary(), "", "| claim | label | " + " | ".join(columns) + " |",
                 "|---|---|" + "---|" * len(columns)]
        for claim_id, row in cells.items():
            lines.append(f"| {claim_id} | {labels[claim_id]} | " + " | ".join(row.get(c, "") for c in columns) + " |")
        failed = [r for r in self.results if r.status in ("fail", "xpass")]
        if failed:
            lines += ["", f"Failures ({len(failed)}):"]
            for r in failed:
                what = r.error.split("\n")[0].removeprefix("ClaimFailure: ") if r.status == "fail" else \
                    f"XPASS: listed as an expected failure ({r.reason}) but passed"
                lines.append(f"- {r.claim.id} [{r.backend} {r.dtype}]: {what}")
        return "\n".join(lines)

    def to_markdown(self):
        lines = [self.summary(), "",
                 "| label | check | backend | dtype | result | cases | worst measured figures |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.results:
            shown = {"fail": "**FAIL**", "xpass": "**XPASS**"}.get(r.status, r.status)
            lines.append(f"| {r.claim.label} | {r.claim.id}: {r.claim.statement} | {r.backend} | {r.dtype} | "
                         f"{shown} | {_cases(r)} | {_shown_figures(r)} |")
        for r in self.results:
            if r.status in ("fail", "xpass"):
                lines += ["", _failure_text(r)]
        for r in self.results:
            if r.status in ("xfail", "not provided", "not applicable") and r.reason:
                lines.append(f"- {r.claim.id} [{r.dtype}] {r.status}: {r.reason}")
        return "\n".join(lines)


_CELL = {"pass": "pass", "fail": "**FAIL**", "xpass": "**XPASS**", "xfail": "xfail", "not provided": "n/p",
         "not applicable": "n/a"}


def _cases(r):
    """The record of a check's cases [AU-5]: measured, and skipped where any were."""
    return f"{r.examples} ({r.skipped} skipped)" if r.skipped else str(r.examples)


def _shown_figures(r):
    """The worst figures over the passing cases, or for a failed check the failing case's own
    (the passing cases' would understate the failure: a norm change of 0 where it failed by
    0.0074)."""
    if r.status in ("fail", "xfail"):
        return ("failing case: " + _figures(r.failing_figures)) if r.failing_figures else "-"
    return _figures(r.figures)


def _figures(figures):
    return ", ".join(f"{k}={v:.3g}" for k, v in sorted(figures.items())) or "-"


def counterexample_snippet(result):
    """A paste-able reproduction of a failing case."""
    case = result.counterexample
    if case is None:
        return ""
    with np.printoptions(precision=17, threshold=10_000, floatmode="unique"):
        lines = [
            "import numpy as np",
            f"x = np.array({np.asarray(case.x).tolist()!r}, dtype=np.{result.dtype})  # shape {np.shape(case.x)}",
            f"params = {case.params!r}",
        ]
        if case.x2 is not None:
            lines.insert(2, f"x2 = np.array({np.asarray(case.x2).tolist()!r}, dtype=np.{result.dtype})")
    impl = "" if result.implementation == "reflip" else " --impl YOUR.MODULE:ADAPTER"
    lines.append("# cotangents and directions are seeded by the bytes of x, so this case alone reproduces it;")
    lines.append(f"# rerun:  reflip audit{impl} --check {result.claim.id} --dtype {result.dtype}"
                 f"   (quick profile: derandomized, the same cases every run)")
    return "\n".join(lines)


def _failure_text(r):
    head = (f"FAILED {r.claim.id} on {r.backend} {r.dtype} [{r.claim.label}]: {r.claim.statement}"
            if r.status == "fail" else
            f"XPASS {r.claim.id} on {r.backend} {r.dtype}: listed as an expected failure ({r.reason}) but passed")
    error = r.error.split("\nYou can reproduce")[0].strip()
    snippet = counterexample_snippet(r)
    return "\n".join(x for x in (head, error, ("Minimal failing case:\n" + snippet) if snippet else "") if x)


# The checks and settings of a parallel run, set before the worker processes fork (they hold
# functions, closures and adapters, which need not pickle): a worker is sent only an index.
_PARALLEL = None


def _run_in_worker(index):
    checks, settings, timeout = _PARALLEL
    result = checks[index].run(settings, timeout)
    result.claim = None  # re-attached by the parent: a claim holds its check function
    try:
        pickle.dumps(result.counterexample)
    except Exception:  # noqa: BLE001 - a case the adapter's types made unpicklable
        result.counterexample = None
    return index, result


def _share_cores(jobs):
    """In a worker: BLAS threads limited to its share of the cores (``jobs`` processes each
    running NumPy's default of one thread per core oversubscribe them), when threadpoolctl is
    installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(max(1, (os.cpu_count() or 1) // jobs))


def _run_checks(selected, settings, timeout, jobs, on_result):
    """Run ``selected`` (serially, or in ``jobs`` forked processes); ``on_result`` is called
    with each result as it completes. Returns the results in the order of ``selected``."""
    global _PARALLEL
    if jobs <= 1 or len(selected) <= 1:
        results = []
        for check in selected:
            results.append(check.run(settings, timeout))
            on_result(results[-1])
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if "fork" not in multiprocessing.get_all_start_methods():
        raise ValueError("jobs > 1 needs the 'fork' start method (Linux, macOS); use jobs=1 here")
    results = [None] * len(selected)
    _PARALLEL = (selected, settings, timeout)
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_share_cores, initargs=(jobs,)) as pool:
            for future in as_completed([pool.submit(_run_in_worker, i) for i in range(len(selected))]):
                index, result = future.result()
                result.claim = selected[index].claim
                results[index] = result
                on_result(result)
    finally:
        _PARALLEL = None
    return results


def check_implementation(adapter=None, *, primitives=None, backends=None, dtypes=DTYPES, profile="quick",
                         xfails=None, timeout=120.0, checks=None, progress=None, shrink=True, jobs=1,
                         progress_bar=False) -> Report:
    """Run the whole suite on ``adapter`` (``None``: reflip itself) and return a :class:`Report`.

    Parameters
    ----------
    adapter : object or None
        See :mod:`reflip.audit.adapter` for the protocol.
    primitives, dtypes : sequences of str, optional
        Restrict the run.
    backends : list of Backend, optional
        Default: every available backend for reflip, NumPy for an adapter.
    profile : {"quick", "thorough"} or any key of ``PROFILES``
    xfails : dict or path, optional
        Expected failures (see :func:`read_xfails`).
    timeout : float or None
        Seconds per check before it is reported as failed by time-out.
    checks : sequence of str, optional
        Run only these claim ids (``ValueError`` for an id that no selected primitive has).
    shrink : bool
        Shrink each failing case to a minimal one (the report's reproduction); ``False`` keeps
        the first failing case found.
    progress : callable, optional
        Called with each :class:`ClaimResult` as its check completes.
    jobs : int
        Processes running the checks (forked: the adapter need not pickle); 1 runs them here.
    progress_bar : bool
        A tqdm bar on stderr, shown once the run has lasted 3 seconds.
    """
    jobs = check_int(jobs, "jobs", minimum=1)
    if isinstance(xfails, str):
        xfails = read_xfails(xfails)
    names = list(primitives or sorted(REGISTRY))
    if checks and set(names) <= set(REGISTRY):  # unknown primitives: iter_checks names them
        # A misspelt id would otherwise select nothing, and an audit that ran nothing passes.
        known = {c.id for name in names for c in claims_for(name)}
        unknown = sorted(set(checks) - known)
        if unknown:
            raise ValueError(f"unknown check id(s) {unknown} for the primitive(s) {names}; "
                             f"known ids look like {sorted(known)[:3]}")
    settings = hypothesis_settings(profile, shrink)
    label = "reflip" if adapter is None else getattr(adapter, "name", type(adapter).__name__)
    report = Report(label, profile)
    selected = [check for check in iter_checks(adapter, primitives=primitives, backends=backends, dtypes=dtypes,
                                               xfails=xfails) if not checks or check.claim.id in checks]
    bar = None
    if progress_bar:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=len(selected), desc=f"reflip audit ({label})", unit="check", file=sys.stderr, delay=3.0,
                   leave=False)

    def on_result(result):
        if bar is not None:
            bar.set_postfix_str(result.claim.id, refresh=False)
            bar.update(1)
        if progress:
            progress(result)

    try:
        report.results = _run_checks(selected, settings, timeout, jobs, on_result)
    finally:
        if bar is not None:
            bar.close()
    return report


def parametrize_with_checks(adapter=None, *, profile="quick", timeout=120.0, **kwargs):
    """Decorator: one pytest test per check of the suite for ``adapter``; the test receives a
    callable ``check`` that runs it (see the module docstring)."""
    import functools

    import pytest

    checks = list(iter_checks(adapter, **kwargs))

    def decorate(test):
        @pytest.mark.parametrize("check", [functools.partial(c, profile, timeout) for c in checks],
                                 ids=[c.id for c in checks])
        @functools.wraps(test)
        def wrapper(check):
            return test(check)

        return wrapper

    return decorate
