"""Claim records and the runner that feeds them hypothesis cases on one backend and dtype."""
from __future__ import annotations

import inspect
import math
import re
import signal
import threading
import time
import warnings
import zlib
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .._backend import host
from .._registry import get as get_primitive
from ..bjorck import BjorckConvergenceWarning

__all__ = ["Claim", "ClaimFailure", "ClaimResult", "CLAIMS", "claim", "claims_for", "register_claim",
           "statement_of", "run_claim", "rng_for", "host", "device_array", "PROFILES", "NotSupported",
           "NotMeasured", "CheckTimeout", "STATUSES", "exceeds"]

STATUSES = ("pass", "fail", "xfail", "xpass", "not provided", "not applicable")


class ClaimFailure(AssertionError):
    """A claim does not hold for an implementation on a drawn case.

    ``figures``: what the check measured on the failing case (the report's worst-figures
    column shows these for a failed check, not the figures of the cases that passed)."""

    def __init__(self, message="", figures=None):
        super().__init__(message)
        self.figures = dict(figures or {})


class NotSupported(Exception):
    """Raised by an implementation for a case outside what it declares it supports (for
    example a group size other than 2 for a MaxMin-only library): the case is skipped."""


class NotMeasured(NotSupported):
    """Raised by a check for a drawn case outside its claim's premise (for example a single
    matrix, drawn for a claim about stacks): the check measured nothing there, so the case is
    skipped like an unsupported one, not counted as a pass. A claim that measures no case at all fails (see
    :func:`run_claim`): a check that skips everything would otherwise pass without checking."""


class CheckTimeout(BaseException):
    """A check ran past its time limit. A BaseException, so that neither hypothesis nor the
    implementation under test can swallow it."""


@dataclass(frozen=True)
class Claim:
    """One checkable statement about one primitive.

    ``check(impl, case, backend, dtype) -> dict[str, float]`` raises :class:`ClaimFailure`
    when the claim fails and otherwise returns measured figures (the suite reports the worst
    value of each over all cases, so larger must mean worse). ``needs`` lists the functions of
    the implementation the check calls (``"fwd"``, ``"bwd"``, ``"jvp"``): a claim whose needs
    an implementation does not provide is reported as "not provided". A claim with
    ``reference=True`` compares the implementation with reflip's own primitive; it does not
    run on reflip itself, where it could not fail.
    """

    id: str
    primitive: str
    label: str
    statement: str
    kind: str
    check: Callable
    backends: tuple[str, ...] | None = None  # None: every backend
    needs: tuple[str, ...] = ("fwd",)
    reference: bool = False
    # (convention key, value): the claim states that convention, so it does not apply to an
    # implementation declaring another value (e.g. a tie policy other than the stable order).
    convention: tuple[str, str] | None = None
    # impl -> "" when the claim applies to it, else why not (e.g. a check of reflip's own
    # options, which an adapter is not passed): reported as "not applicable".
    applicable: Callable | None = None

    def applies_to(self, backend) -> bool:
        return self.backends is None or backend.name in self.backends


@dataclass
class ClaimResult:
    claim: Claim
    backend: str
    dtype: str
    status: str = "fail"
    figures: dict = field(default_factory=dict)
    examples: int = 0  # cases the check measured (passed)
    skipped: int = 0  # cases skipped: NotSupported by the implementation, or NotMeasured by the check
    seconds: float = 0.0
    error: str = ""
    counterexample: object = None
    # The figures measured on the failing case (``figures`` holds the worst over the cases that
    # passed): a failed check's report shows these, so that its numbers are the failure's.
    failing_figures: dict = field(default_factory=dict)
    reason: str = ""  # why a check is xfail / not provided
    implementation: str = "reflip"

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "xfail", "not provided", "not applicable")


CLAIMS: dict[str, Claim] = {}

# Hypothesis profiles of reflip's own runs: `reflip audit --profile` and the tests' profiles;
# "mutants": the budget of `reflip audit --mutants` (quick), at which every mutant of the
# library is found from a derandomized start (tests/meta/test_mutant_library.py).
PROFILES = {"quick": 25, "ci": 25, "default": 50, "thorough": 500, "mutants": 60}


def register_claim(claim: Claim) -> Claim:
    if claim.id in CLAIMS:
        raise ValueError(f"claim {claim.id!r} is already registered")
    CLAIMS[claim.id] = claim
    return claim


def claims_for(primitive: str):
    """The registered claims of ``primitive``, in the order they were declared.

    Importing :mod:`reflip.audit` registers every claim (its ``__init__`` imports
    :mod:`reflip.audit.claims` first), so this is a plain lookup: the engine imports no claim
    module (they import the engine).
    """
    return [c for c in CLAIMS.values() if c.primitive == primitive]


_CITATION = re.compile(r"^(\[[A-Z]{2,4}-\d+\]\s*)+")


def statement_of(check, cases=None) -> str:
    """The statement of the claim ``check`` checks: the first line of its docstring, without
    the leading proof citations and the final period; ``cases`` (a claim running the same check
    on other cases, e.g. ties) is appended as ``", on <cases>"``."""
    doc = inspect.getdoc(check) or ""
    first = _CITATION.sub("", doc.split("\n", 1)[0]).strip().rstrip(".")
    if not first:
        raise ValueError(f"check {check.__qualname__} has no docstring (its first line is the claim's "
                         "statement)")
    return f"{first}, on {cases}" if cases else first


def claim(id: str, label: str, kind: str, *, needs=("fwd",), cases=None, convention=None, applicable=None,
          backends=None, reference=False):
    """Declare the decorated check as claim ``id`` (``"<primitive>.<name>"``) and register it.

    ``label`` is the proof label the claim states, ``kind`` the kind of case the primitive's
    strategy draws for it, ``needs`` the implementation's functions the check calls. The
    statement is the first line of the check's docstring (see :func:`statement_of`); ``cases``
    names the cases of a claim that runs the same check again on other ones. ``convention``
    (key, value) and ``applicable`` say when the claim does not apply to an implementation,
    ``backends`` restricts it to named backends, ``reference=True`` marks a comparison with
    reflip's own primitive (see :class:`Claim`). Decorators stack: one check may state several
    claims, which are registered bottom-up, as Python applies them.
    """
    primitive, dot, name = id.partition(".")
    if not dot or not name:
        raise ValueError(f"claim id must be '<primitive>.<name>', got {id!r}")

    def declare(check):
        register_claim(Claim(id, primitive, label, statement_of(check, cases), kind, check,
                             backends=None if backends is None else tuple(backends), needs=tuple(needs),
                             reference=reference, convention=convention, applicable=applicable))
        return check

    return declare


def exceeds(value, limit):
    """``value > limit`` elementwise, and True wherever either is NaN [AU-1].

    Every check compares its measured error with this, never with ``>``: ``NaN > tol`` is
    False, so a NaN error (a NaN output, VJP or JVP) would pass a check written as
    ``if err > tol: fail``.
    """
    return np.logical_not(np.less_equal(value, limit))


def rng_for(*arrays):
    """A NumPy generator seeded by the case's bytes: directions and cotangents are then a
    function of the case, so a failure reproduces from the printed example alone."""
    seed = 0
    for a in arrays:
        seed = zlib.crc32(np.ascontiguousarray(a).tobytes(), seed)
    return np.random.default_rng(seed)


def device_array(backend, a, dtype):
    """NumPy array -> backend array of dtype name ``dtype``, read-only on NumPy so that an
    implementation that writes into its input fails loudly."""
    a = np.array(a, dtype=dtype)
    if backend.name == "numpy":
        a.flags.writeable = False
        return a
    return backend.asarray(a)


def missing_needs(claim, impl):
    return [n for n in claim.needs if getattr(impl, n, None) is None]


class _Timer:
    """Raise :class:`CheckTimeout` in the main thread after ``seconds`` (no-op elsewhere or
    without SIGALRM: a check that hangs there hangs the run, which is reported in the docs)."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.armed = (seconds is not None and hasattr(signal, "setitimer")
                      and threading.current_thread() is threading.main_thread())

    def _fire(self, signum, frame):
        raise CheckTimeout(f"check ran past its {self.seconds:g} s limit")

    def __enter__(self):
        if self.armed:
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


def _user_notes(notes):
    """Hypothesis's notes without its explanation of which lines failing cases ran (reflip's
    harness lines, meaningless to a user): the reproduction notes stay."""
    kept, skipping = [], False
    for note in notes:
        if note.startswith("Explanation:"):
            skipping = True
            continue
        if skipping and (note.startswith("    ") or note.startswith("(and ")):
            continue
        skipping = False
        kept.append(note)
    return kept


def _counting_skips(claim, result):
    """``claim`` with a check that counts, in ``result.skipped``, the cases it raises
    :class:`NotSupported` (or its :class:`NotMeasured`) on, then re-raises."""
    check = claim.check

    def counted(*args):
        try:
            return check(*args)
        except NotSupported:
            result.skipped += 1
            raise

    return replace(claim, check=counted)


def _require_measured(result):
    """The per-claim record [AU-5]: a claim run on one backend and dtype must have measured at
    least one case. Every case skipped (outside the implementation's support, or outside the
    claim's premise) is no evidence that the claim holds, so it fails, naming the claim, the
    backend and the dtype."""
    if result.examples == 0:
        raise ClaimFailure(
            f"{result.claim.id} measured no case on {result.backend} {result.dtype}: all "
            f"{result.skipped} drawn cases were skipped (NotSupported by the implementation or "
            "outside the claim's premise), so nothing was checked; declare what the implementation "
            "supports (its conventions, e.g. group_sort.group_sizes or <primitive>.params) so that "
            "cases are drawn inside it")


def run_claim(claim: Claim, impl, backend, dtype: str, *, settings=None, timeout=None) -> ClaimResult:
    """Run ``claim`` on ``impl`` over hypothesis cases.

    Without ``settings`` (pytest), a failure is re-raised with hypothesis's reproduction. With
    ``settings`` (the audit), failures, exceptions and time-outs are returned in the result,
    with the minimal failing case in ``result.counterexample``.
    """
    from hypothesis import HealthCheck, Phase, given, reject
    from hypothesis import settings as hsettings
    from hypothesis.errors import Unsatisfiable

    result = ClaimResult(claim, backend.name, dtype)
    if claim.convention is not None:
        key, value = claim.convention
        declared = (getattr(impl, "conventions", None) or {}).get(key, value)
        if declared != value:
            result.status, result.reason = "not applicable", f"declared {key} = {declared!r}"
            return result
    reason = claim.applicable(impl) if claim.applicable is not None else ""
    if reason:
        result.status, result.reason = "not applicable", reason
        return result
    missing = missing_needs(claim, impl)
    if missing:
        result.status, result.reason = "not provided", f"implementation provides no {', '.join(missing)}"
        return result
    factory = get_primitive(claim.primitive).strategy_factory()
    fixed = getattr(impl, "strategy_fixed", lambda primitive: {})(claim.primitive)
    if fixed and "fixed" in inspect.signature(factory).parameters:
        # A strategy that draws its cases for what the implementation fixes (rather than
        # drawing others and rejecting them, or imposing values the case was not drawn for).
        strategy = factory(dtype, claim.kind, fixed=fixed)
    else:
        strategy = factory(dtype, claim.kind)
    params_for = getattr(impl, "params_for", None)
    if params_for is not None:
        strategy = strategy.map(lambda case: case._replace(params=params_for(claim.primitive, case.params)))
    figures = result.figures
    # Count the skipped cases without touching ``holds`` (whose source seeds the derandomized
    # cases): the claim it closes over is rebound to one whose check counts them.
    claim = _counting_skips(claim, result)

    base = settings if settings is not None else hsettings()
    configured = hsettings(
        base,
        deadline=None,
        database=None if settings is not None else base.database,
        # One failure, the minimal one, whose message names its cause (not "2 distinct failures").
        report_multiple_bugs=False,
        # No "Explanation: these lines were always and only run by failing examples": the lines
        # are reflip's own harness, which tells a user nothing about their implementation.
        phases=[p for p in base.phases if p is not Phase.explain],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
    )

    @configured
    @given(strategy)
    def holds(case):
        try:
            with backend.active():
                measured = claim.check(impl, case, backend, dtype) or {}
        except NotSupported:
            reject()
        except Exception:
            result.counterexample = case  # hypothesis replays the minimal failing case last
            raise
        for key, value in measured.items():
            figures[key] = max(figures.get(key, -math.inf), float(value))
        result.examples += 1

    start = time.perf_counter()
    try:
        with _Timer(timeout), warnings.catch_warnings():
            # The cases run Björck and the polar iteration for a few steps on purpose (the
            # derivative and spectral claims are about the computed iterations), so their
            # non-convergence warnings say nothing here; the report claims, which are about
            # those warnings, record them in a context of their own.
            warnings.simplefilter("ignore", BjorckConvergenceWarning)
            try:
                holds()
            except Unsatisfiable:
                pass  # every drawn case was skipped: the record below says so
        _require_measured(result)
        result.status = "pass"
    except CheckTimeout as exc:
        result.error = f"CheckTimeout: {exc}"
        if settings is None:
            raise
    except Exception as exc:  # the report names the failure; pytest gets it re-raised
        # Hypothesis re-raises the minimal failing case's own exception: its figures are the
        # failure's. (Read here, not in ``holds``: the derandomized cases are seeded by the
        # source of ``holds``, which the mutant meta-tests' budgets were sized against.)
        result.failing_figures = {k: float(v) for k, v in getattr(exc, "figures", {}).items()}
        notes = "\n".join(_user_notes(getattr(exc, "__notes__", []) or []))
        result.error = f"{type(exc).__name__}: {exc}" + (f"\n{notes}" if notes else "")
        if settings is None:
            raise
    finally:
        result.seconds = time.perf_counter() - start
    return result
