"""Fuzzing public entry points: value pools, a per-call time limit and an outcome classifier.

The rule every public function of reflip follows (CONTRIBUTING.md, "Errors and bad input"):
a call either returns a result that passes the function's own correctness property, or raises
``TypeError``/``ValueError`` whose message names the parameter at fault. This module turns the
rule into a check that any hypothesis test can run on any function:

- :class:`Param` describes one parameter by two pools, ``valid`` and ``invalid`` (wrong types,
  out-of-range values, special floats, odd dtypes and layouts...). :func:`draw_call` draws every
  parameter from one of the two, so valid and invalid arguments are mixed and the fuzzer
  *knows* which ones were invalid.
- :func:`run_call` runs the call under a per-call time limit (``SIGALRM``, main thread only),
  with every array argument copied before and compared after, and every warning recorded.
- :func:`classify` sorts the outcome: ``"result"`` (then the target's ``check`` decides),
  ``"refused"`` (a ``TypeError``/``ValueError`` naming an invalid parameter), or a failure:
  ``"foreign"`` (any other exception, NumPy's ``AxisError`` included), ``"unnamed"`` (the
  message names no invalid parameter), ``"refused-valid"`` (an error although every argument
  was valid), ``"hang"``, ``"mutated"``, ``"wrong"`` (the result fails the check).

Why ``AxisError`` counts as foreign although it subclasses ``ValueError`` (and ``IndexError``):
it is NumPy's message about NumPy's call, raised because reflip forwarded an axis it did not
check; the rule asks for one validation module (``reflip/_validate.py``), whose ``check_axis``
raises a plain ``ValueError``.

Why a message must name a parameter drawn *invalid* (not any parameter): a function that
raises ``ValueError("x ...")`` for every call would otherwise pass. Combinations of individually
valid values that are jointly invalid (a group size that does not divide the axis length) are
declared by the target's ``conflicts``, which returns the parameters a message may then name.
"""
from __future__ import annotations

import contextlib
import math
import re
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "ABSENT", "CallTimeout", "Param", "Target", "Outcome", "FuzzFailure", "time_limit",
    "draw_call", "run_call", "classify", "check_call", "fuzz_target", "SPECIAL_FLOATS",
    "floats_array", "array_param", "int_param", "real_param", "choice_param", "bool_param",
    "any_junk", "names_parameter", "DTYPES_ALL", "survey",
]

#: Marks a parameter that is not passed at all (its default is used).
ABSENT = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()

#: Every dtype the fuzzer tries (the numeric primitives take float32/float64 only).
DTYPES_ALL = ("bool", "int8", "int64", "uint8", "complex128", "float16", "float32", "float64",
              "longdouble", "object")

_NEG_NAN = float(np.copysign(np.nan, -1.0))


def _nan_with_bits(bits):
    """The float64 NaN with these bits, as a Python float (which keeps them)."""
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


#: Quiet NaNs with a payload, of both signs. The payload sits in the high mantissa bits, so a
#: cast to float32 keeps it (0x7FC00001 / 0xFFC00001); ``_NEG_NAN`` is x86's default NaN
#: (``inf - inf``: 0xFFF8000000000000, 0xFFC00000 in float32), which sort keys that flip
#: negative numbers treat differently from ``math.nan`` (issue 20).
_PAYLOAD_NANS = (_nan_with_bits(0x7FF8000020000000), _nan_with_bits(0xFFF8000020000000))
#: Special values: NaN of both signs and with payloads, infinities, signed zero, subnormals
#: (float64 and float32), values near the float16/float32 maxima, huge values.
SPECIAL_FLOATS = (math.nan, _NEG_NAN, *_PAYLOAD_NANS, math.inf, -math.inf, -0.0, 5e-324, -1e-310,
                  1e-40, 65504.0, 3.4e38, 1e300, -1e300, 1e-300)


class CallTimeout(BaseException):
    """Raised inside a call that ran past its time limit. A ``BaseException``, so that a
    library's ``except Exception`` cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds):
    """Raise :class:`CallTimeout` in the block after ``seconds`` of wall-clock time.

    ``signal.setitimer`` works in the main thread only; elsewhere (e.g. a worker thread of a
    parallel test runner) the block runs without a limit rather than silently failing.
    """
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expire(signum, frame):
        raise CallTimeout(f"call ran past its time limit of {seconds} s")

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------------------
# Parameters and targets


@dataclass(frozen=True)
class Param:
    """One parameter: a pool of valid values and a pool of invalid ones (``None``: no invalid
    value is drawn, e.g. for an argument the target builds itself). Either pool may be a
    function of the arguments drawn before it (e.g. a cotangent shaped like the input)."""
    valid: Any
    invalid: Any = None


@dataclass
class Target:
    """A public function under fuzzing.

    ``call(**kwargs)`` calls it (``ABSENT`` arguments are dropped before); ``check(kwargs,
    result, warns)`` raises ``AssertionError`` when a result is wrong (``warns``: the warnings
    the call emitted, so that a check can accept a documented non-convergence warning);
    ``conflicts(kwargs)`` returns the names of individually valid arguments that are invalid
    together; ``documented`` lists further exception types the function documents, each with
    the condition (a predicate of ``kwargs``) under which it may be raised.
    """
    name: str
    call: Callable[..., Any]
    params: dict
    check: Callable | None = None
    conflicts: Callable | None = None
    documented: tuple = ()
    aliases: Callable | None = None  # kwargs -> {name: [other strings naming it]}
    seconds: float | None = None


@dataclass
class Outcome:
    kind: str
    result: Any = None
    exception: BaseException | None = None
    warnings: list = field(default_factory=list)
    warnings_raw: list = field(default_factory=list)
    detail: str = ""
    seconds: float = 0.0


class FuzzFailure(AssertionError):
    """A call broke the rule; the message is a reproduction."""


# ---------------------------------------------------------------------------------------------
# Value pools


def _cast(a, dtype):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return a.astype(dtype)


@st.composite
def _layout(draw, a, layouts):
    """The same values in another memory layout: transposed view, strided view, Fortran order,
    read-only, or a Python list / scalar."""
    kind = draw(st.sampled_from(layouts))
    if kind == "strided":
        big = np.repeat(a, 2, axis=-1) if a.ndim else a
        return big[..., ::2] if a.ndim else big
    if kind == "transposed" and a.ndim >= 2:
        return np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "readonly":
        b = a.copy()
        b.setflags(write=False)
        return b
    if kind == "list":
        return a.tolist()
    if kind == "scalar":
        return a.item() if a.size == 1 else a
    return a


def floats_array(shape, dtype="float64", *, elements=None, layouts=("plain",)):
    """An array of ``shape`` (a tuple or a strategy of tuples) and ``dtype`` (a name or a
    strategy), its values drawn as float64 and cast, in one of ``layouts``."""
    elements = elements if elements is not None else st.floats(-4.0, 4.0, width=32)
    shapes = shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))
    dtypes = dtype if isinstance(dtype, st.SearchStrategy) else st.just(dtype)

    @st.composite
    def build(draw):
        s = draw(shapes)
        a = _cast(draw(hnp.arrays(np.float64, s, elements=elements)), draw(dtypes))
        return draw(_layout(a, layouts))
    return build()


_VALID_LAYOUTS = ("plain", "plain", "strided", "transposed", "fortran", "readonly")


def _special_elements():
    return st.one_of(st.floats(-4.0, 4.0, width=32), st.sampled_from(SPECIAL_FLOATS))


def any_junk():
    """Values of the wrong type for almost any parameter."""
    return st.sampled_from([None, "a", b"x", 1j, object(), [], {}, (1, "a"), math.nan,
                            10 ** 30, -1, True])


def array_param(shapes, *, dtypes=("float32", "float64"), exact=False):
    """A floating array parameter. Valid: ``dtypes`` (any real floating dtype with
    ``exact=True``), finite values in [-4, 4], any strided/transposed/Fortran/read-only layout.
    Invalid: every other dtype, special values (NaN, inf, subnormals, huge), empty and 0-d
    arrays, lists, scalars and junk."""
    dtypes = ("float16", "float32", "float64", "longdouble") if exact else tuple(dtypes)
    valid = floats_array(shapes, st.sampled_from(dtypes), layouts=_VALID_LAYOUTS)
    wrong_dtype = floats_array(shapes, st.sampled_from([d for d in DTYPES_ALL if d not in dtypes]))
    special = floats_array(shapes, st.sampled_from(dtypes), elements=_special_elements(),
                           layouts=_VALID_LAYOUTS)
    odd_shape = floats_array(st.sampled_from([(), (0,), (0, 3), (3, 0), (1, 0, 2)]),
                             st.sampled_from(dtypes))
    as_list = floats_array(shapes, st.sampled_from(dtypes), layouts=("list", "scalar"))
    invalid = st.one_of(wrong_dtype, special, odd_shape, as_list, any_junk())
    return Param(valid, invalid)


def int_param(low, high, *, huge=True):
    """An integer in ``[low, high]``; invalid: just outside, huge, floats, bools, strings."""
    bad = [low - 1, -(10 ** 30), 1.5, float(low), "1", None, True, np.float64(2.0)]
    if huge:
        bad += [10 ** 30, high + 1]
    return Param(st.integers(low, high), st.sampled_from(bad))


def real_param(low, high, *, extra_invalid=(), allow=()):
    """A real number in ``[low, high]``; invalid: NaN, infinities, outside values, strings,
    bools, complex, None."""
    bad = [math.nan, math.inf, -math.inf, "a", True, 1j, None, low - 1.0, -1e300, 1e300,
           *extra_invalid]
    bad = [b for b in bad if not any(b is a or (b == a and type(b) is type(a)) for a in allow)]
    valid = st.one_of(st.floats(low, high), st.sampled_from(list(allow))) if allow else \
        st.floats(low, high)
    return Param(valid, st.sampled_from(bad))


def choice_param(choices, *, invalid=("nope", 3, None, 1.5, "")):
    return Param(st.sampled_from(list(choices)), st.sampled_from([c for c in invalid
                                                                   if c not in choices]))


def bool_param():
    return Param(st.booleans(), st.sampled_from(["yes", 1, 0, None, 2.0]))


# ---------------------------------------------------------------------------------------------
# Drawing, running and classifying one call


@st.composite
def draw_call(draw, target, p_invalid=4):
    """Draw ``(kwargs, invalid_names)``: each parameter comes from its invalid pool with
    probability 1/``p_invalid`` (never with ``p_invalid=None``)."""
    kwargs, invalid = {}, set()
    def pool(p):
        return p if isinstance(p, st.SearchStrategy) else p(kwargs)

    for name, param in target.params.items():
        if param.invalid is not None and p_invalid and draw(st.integers(0, p_invalid - 1)) == 0:
            kwargs[name] = draw(pool(param.invalid))
            invalid.add(name)
        else:
            kwargs[name] = draw(pool(param.valid))
    return kwargs, frozenset(invalid)


def _arrays_in(obj, path="", seen=None):
    """Every NumPy array reachable through lists, tuples, dicts and dataclass-like objects."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield path, obj
    elif isinstance(obj, (list, tuple)):
        for i, o in enumerate(obj):
            yield from _arrays_in(o, f"{path}[{i}]", seen)
    elif isinstance(obj, dict):
        for k, o in obj.items():
            yield from _arrays_in(o, f"{path}[{k!r}]", seen)
    elif hasattr(obj, "__dataclass_fields__"):
        for k in obj.__dataclass_fields__:
            yield from _arrays_in(getattr(obj, k, None), f"{path}.{k}", seen)


def _snapshot(kwargs):
    return [(f"{name}{path}", a, a.copy(), a.flags.writeable)
            for name, value in kwargs.items() for path, a in _arrays_in(value)]


def _mutations(snapshot):
    found = []
    for where, a, before, writeable in snapshot:
        if a.shape != before.shape or a.dtype != before.dtype:
            found.append(f"{where}: shape/dtype changed")
        elif a.dtype == object:
            if not all(x is y or x == y or (x != x and y != y)
                       for x, y in zip(a.ravel().tolist(), before.ravel().tolist(), strict=True)):
                found.append(f"{where}: values changed")
        elif not np.array_equal(a, before, equal_nan=a.dtype.kind in "fc") or \
                (a.dtype.kind in "fc" and not np.array_equal(np.signbit(a.real), np.signbit(before.real))):
            found.append(f"{where}: values changed")
        elif a.flags.writeable != writeable:
            found.append(f"{where}: write flag changed")
    return found


def names_parameter(message, name):
    """Whether ``message`` names ``name`` as a word (so that ``x`` is not found in "max"); case
    is ignored (``W`` names ``w``)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message,
                     flags=re.IGNORECASE) is not None


def run_call(target, kwargs, seconds=None):
    """Run ``target`` on ``kwargs`` (``ABSENT`` ones dropped): its :class:`Outcome` with kind
    ``"result"``, ``"raised"``, ``"hang"`` or ``"mutated"`` (classified by :func:`classify`)."""
    passed = {k: v for k, v in kwargs.items() if v is not ABSENT}
    snapshot = _snapshot(passed)
    limit = target.seconds if target.seconds is not None else seconds
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with time_limit(limit):
                result = target.call(**passed)
            outcome = Outcome("result", result=result)
        except CallTimeout as exc:
            outcome = Outcome("hang", exception=exc)
        except Exception as exc:  # noqa: BLE001 - every exception is classified below
            outcome = Outcome("raised", exception=exc)
    outcome.seconds = time.perf_counter() - start
    outcome.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    outcome.warnings_raw = list(caught)
    changed = _mutations(snapshot)
    if changed:
        outcome.kind, outcome.detail = "mutated", "; ".join(changed)
    return outcome


def classify(target, kwargs, invalid, outcome):
    """Sort a finished call into ``"result"``, ``"refused"`` (acceptable) or a failure kind
    (``"foreign"``, ``"unnamed"``, ``"refused-valid"``, ``"hang"``, ``"mutated"``,
    ``"wrong"``); sets ``outcome.kind`` and ``outcome.detail`` and returns the kind."""
    if outcome.kind in ("hang", "mutated"):
        return outcome.kind
    if outcome.kind == "result":
        if target.check is not None:
            try:
                with np.errstate(all="ignore"):
                    target.check(kwargs, outcome.result, outcome.warnings_raw)
            except AssertionError as exc:
                outcome.kind, outcome.detail = "wrong", str(exc) or "check failed"
            except Exception as exc:  # noqa: BLE001 - the result broke when used: accepted bad input
                outcome.kind = "wrong"
                outcome.detail = f"using the result raised {type(exc).__name__}: {exc}"
        return outcome.kind
    exc = outcome.exception
    for exc_type, when in target.documented:
        if isinstance(exc, exc_type) and when(kwargs):
            outcome.kind = "refused"
            return outcome.kind
    axis_error = getattr(getattr(np, "exceptions", np), "AxisError", None)
    if not isinstance(exc, (TypeError, ValueError)) or (axis_error and isinstance(exc, axis_error)):
        outcome.kind, outcome.detail = "foreign", f"{type(exc).__name__}: {exc}"
        return outcome.kind
    at_fault = set(invalid) | set(target.conflicts(kwargs) if target.conflicts else ())
    message = str(exc)
    if not at_fault:
        outcome.kind = "refused-valid"
        outcome.detail = f"{type(exc).__name__}: {message}"
        return outcome.kind
    aliases = target.aliases(kwargs) if target.aliases else {}
    words = {n: [n, *aliases.get(n, ())] for n in at_fault}
    if any(names_parameter(message, w) or (len(w) > 3 and w in message)
           for ws in words.values() for w in ws):
        outcome.kind = "refused"
    else:
        outcome.kind = "unnamed"
        outcome.detail = (f"{type(exc).__name__}: {message!r} names none of the parameters at "
                          f"fault {sorted(at_fault)}")
    return outcome.kind


def _short(v, limit=300):
    if isinstance(v, np.ndarray):
        flags = "" if v.flags.writeable else ", read-only"
        layout = "" if v.flags.c_contiguous else ", non-contiguous"
        text = np.array2string(v, threshold=12, edgeitems=2, precision=17)
        return f"np.array({text}, dtype={v.dtype}){flags}{layout} shape={v.shape}"[:limit]
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "..."


def check_call(target, kwargs, invalid, seconds=None):
    """Run and classify one call; raise :class:`FuzzFailure` (with a reproduction) unless the
    outcome is a checked result or a named refusal. Returns the :class:`Outcome`."""
    outcome = run_call(target, kwargs, seconds)
    kind = classify(target, kwargs, invalid, outcome)
    if kind in ("result", "refused"):
        return outcome
    args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items() if v is not ABSENT)
    detail = outcome.detail or (f"{type(outcome.exception).__name__}: {outcome.exception}"
                                if outcome.exception else "")
    raise FuzzFailure(f"{target.name}: {kind}: {detail}\n  call: {target.name}({args})\n"
                      f"  invalid: {sorted(invalid)}; warnings: {outcome.warnings[:3]}")


def fuzz_target(target, data, seconds=None, p_invalid=4):
    """One hypothesis example: draw a call of ``target`` with ``data`` (``st.data()``) and
    check it. The outcome kind and every warning category are recorded as hypothesis events
    (``pytest --hypothesis-show-statistics`` prints their frequencies)."""
    kwargs, invalid = data.draw(draw_call(target, p_invalid), label=target.name)
    outcome = check_call(target, kwargs, invalid, seconds)
    event(f"outcome: {outcome.kind}")
    for w in outcome.warnings_raw:
        event(f"warning: {w.category.__name__}")
    return outcome


def survey(targets, max_examples=200, seconds=3.0, p_invalid=4):
    """Every distinct failure of ``targets`` (not only the first of each, as a test reports):
    ``{target name: {first line of the failure: shortest reproduction}}``. For triage, e.g.
    ``survey(tests.test_fuzz.TARGETS)`` after a change to the validation."""
    from hypothesis import HealthCheck, Phase, given, settings

    found = {}

    def runner(target):
        @settings(max_examples=max_examples, deadline=None, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def run(data):
            try:
                fuzz_target(target, data, seconds, p_invalid)
            except FuzzFailure as exc:
                text = str(exc)
                key = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", text.splitlines()[0])[:200]
                known = found.setdefault(target.name, {})
                if key not in known or len(text) < len(known[key]):
                    known[key] = text
        return run

    for target in targets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runner(target)()
    return found
