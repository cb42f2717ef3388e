"""Meta-tests of the fuzz suite (tests/test_fuzz.py, :mod:`reflip.testing.fuzz`): real reflip
functions wrapped with a planted bug, run through the same targets, pools and classifier, must
be reported; the unwrapped functions on valid arguments must not."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import reflip
from reflip.testing.fuzz import (
    ABSENT,
    FuzzFailure,
    Outcome,
    Param,
    Target,
    classify,
    fuzz_target,
    run_call,
)
from tests import test_fuzz

pytestmark = pytest.mark.meta

GROUP_SORT = next(t for t in test_fuzz.TARGETS if t.name == "group_sort")
LINF = next(t for t in test_fuzz.TARGETS if t.name == "linf_project")
LIMIT = 0.5  # s: the per-call limit of these runs; the planted loop never ends by itself


def planted(target, fn, name):
    """``target`` with its function replaced by ``fn`` (same parameters and check)."""
    return Target(name, fn, target.params, target.check, target.conflicts, target.documented)


def fuzz(target, *, p_invalid=None, examples=40):
    """Run ``target`` through the suite's machinery; the first failure propagates."""
    @settings(max_examples=examples, phases=[Phase.generate], deadline=None, database=None)
    @given(data=st.data())
    def run(data):
        fuzz_target(target, data, seconds=LIMIT, p_invalid=p_invalid)
    run()


def _kw(group_size, axis):
    return {"group_size": 2 if group_size is ABSENT else group_size,
            "axis": -1 if axis is ABSENT else axis}


def looping_group_sort(x, group_size=ABSENT, axis=ABSENT):
    """GroupSort that spins forever on a group size of 3 (as a convergence loop whose exit
    condition is never met would)."""
    y = reflip.group_sort(x, **_kw(group_size, axis))
    while group_size == 3:
        pass
    return y


def mutating_group_sort(x, group_size=ABSENT, axis=ABSENT):
    """GroupSort that writes its result into a writeable input (an in-place ``sort``)."""
    y = reflip.group_sort(x, **_kw(group_size, axis))
    if isinstance(x, np.ndarray) and x.flags.writeable:
        x[...] = y
    return y


def indexing_linf_project(w, radius=1.0, threshold="exact"):
    """l_inf projection that reads one entry past the end of a row of length 1."""
    y = reflip.linf_project(w, radius=radius, threshold=threshold)
    if np.shape(w)[-1] == 1:
        np.asarray(w)[..., 1]
    return y


def unsorted_group_sort(x, group_size=ABSENT, axis=ABSENT):
    """Validates like GroupSort, then returns the input unchanged (unsorted)."""
    reflip.group_sort(x, **_kw(group_size, axis))
    return np.array(x, copy=True)


@pytest.mark.parametrize("fn, kind", [
    (looping_group_sort, "hang"),
    (mutating_group_sort, "mutated"),
    (indexing_linf_project, "foreign: IndexError"),
    (unsorted_group_sort, "wrong"),
], ids=["unbounded-loop", "mutation", "IndexError", "wrong-result"])
def test_planted_bug_is_reported(fn, kind):
    target = planted(LINF if fn is indexing_linf_project else GROUP_SORT, fn, fn.__name__)
    start = time.perf_counter()
    with pytest.raises(FuzzFailure, match=f": {kind}"):
        fuzz(target)
    # a hang costs the per-call limit, not the loop's lifetime
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("target", [GROUP_SORT, LINF], ids=lambda t: t.name)
def test_unplanted_functions_pass_on_valid_arguments(target):
    """The control: the same runs on reflip's own functions report nothing."""
    fuzz(target)


# The classifier on hand-made outcomes: what each rule accepts and refuses.

TWO = Target("f", lambda **k: None, {"x": Param(st.none()), "radius": Param(st.none())})


def _raised(exc):
    return Outcome("raised", exception=exc)


def test_refusal_must_name_an_invalid_parameter():
    assert classify(TWO, {}, {"radius"}, _raised(ValueError("radius must be > 0, got -1"))) == "refused"
    # names a parameter, but one that was valid: a blanket "x is wrong" does not pass
    assert classify(TWO, {}, {"radius"}, _raised(ValueError("x is wrong"))) == "unnamed"
    # the name as a word: "max" does not name "x"
    assert classify(TWO, {}, {"x"}, _raised(ValueError("max exceeded"))) == "unnamed"
    assert classify(TWO, {}, set(), _raised(TypeError("x must be an array"))) == "refused-valid"


def test_foreign_exceptions_fail_axis_error_included():
    assert classify(TWO, {}, {"x"}, _raised(IndexError("x index 3"))) == "foreign"
    assert classify(TWO, {}, {"x"}, _raised(ZeroDivisionError("x"))) == "foreign"
    axis_error = np.exceptions.AxisError(5, 2)
    assert isinstance(axis_error, ValueError)
    assert classify(TWO, {}, {"x"}, _raised(axis_error)) == "foreign"


def test_mutation_of_a_nested_array_and_of_signed_zero_is_seen():
    params = [{"W": np.array([0.0, 1.0])}]

    def flip(params):
        params[0]["W"][0] = -0.0  # equal to 0.0 under ==, a different float
    outcome = run_call(Target("flip", flip, {}), {"params": params})
    assert outcome.kind == "mutated" and "params[0]['W']" in outcome.detail
