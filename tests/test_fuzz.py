"""Fuzz suite: every public function of ``reflip``, ``reflip.universality`` and ``reflip.nn``
called with arbitrary arguments (CONTRIBUTING.md, "Errors and bad input"; issue 14).

Each target below describes its parameters by a pool of valid and a pool of invalid values
(:mod:`reflip.testing.fuzz`); a call must return a result that passes the target's ``check``
(a cheap property of the function, never its formula re-derived) or raise ``TypeError`` /
``ValueError`` naming a parameter that was drawn invalid. Any other exception, a call past the
time limit, a modified input or a wrong result fails, with a paste-able reproduction.

Profiles: the suite's hypothesis profile (``CI=true``: a few examples per target, no
shrinking, about a minute in all) or ``REFLIP_FUZZ=thorough`` (or ``pytest --thorough``): many
more examples, shrinking on, a longer per-call limit.
"""
from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import reflip
import reflip.universality as uni
from reflip import nn
from reflip.nn import certify, io, lipschitz, losses, optim, train
from reflip.testing.fuzz import (
    ABSENT,
    Param,
    Target,
    any_junk,
    array_param,
    bool_param,
    check_call,
    choice_param,
    floats_array,
    fuzz_target,
    int_param,
    real_param,
)
from reflip.tolerances import exact_rtol

THOROUGH = (os.environ.get("REFLIP_FUZZ") == "thorough"
            or settings._current_profile == "thorough")
#: Per-call time limit (s): a few times the slowest legitimate call on a 2-core machine.
CALL_SECONDS = 20.0 if THOROUGH else 4.0
FUZZ_SETTINGS = (settings(max_examples=300) if THOROUGH else
                 settings(max_examples=20, phases=[Phase.explicit, Phase.generate]))

# ---------------------------------------------------------------------------------------------
# Shapes, helpers and fixed models

VEC = st.tuples(st.integers(1, 6))
MAT = st.tuples(st.integers(1, 5), st.integers(1, 5))
STACK = st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4))
ANY = st.one_of(VEC, MAT, STACK)
MATS = st.one_of(MAT, STACK)
P = choice_param((1, 2, math.inf, 1.0, 2.0), invalid=(0, 3, -1, "a", None, math.nan, True, 1.5))
RADIUS = real_param(1e-3, 8.0, extra_invalid=(0.0, -1.0))

_TMP = tempfile.mkdtemp(prefix="reflip-fuzz-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def arr(v):
    """The value a check compares: any array-like as float64 NumPy (longdouble kept)."""
    a = np.asarray(v)
    return a if a.dtype == np.longdouble else a.astype(np.float64)


def finite(v):
    try:
        return bool(np.all(np.isfinite(np.asarray(v, dtype=float))))
    except (TypeError, ValueError):
        return False


def is_valid_float(v, exact=False):
    """Whether ``v`` is an array of a dtype the function is documented to accept."""
    kinds = ("float16", "float32", "float64", "longdouble") if exact else ("float32", "float64")
    return isinstance(v, np.ndarray) and v.dtype.name in [np.dtype(k).name for k in kinds]


def assert_policy(x, exact=False, name="x"):
    """A result was returned, so the input must have a dtype the policy accepts (CONTRIBUTING.md):
    float32/float64 for the numerical primitives, any real floating dtype for GroupSort."""
    assert is_valid_float(x, exact), (
        f"returned a result for {name} of {type(x).__name__}"
        f"{' dtype ' + str(x.dtype) if isinstance(x, np.ndarray) else ''}, which the dtype policy refuses")


def tol_of(dtype):
    return 64 * float(np.finfo(dtype).eps) if np.dtype(dtype).kind == "f" else 1e-6


def assert_like(y, x, what="output"):
    """Output shape and dtype follow the input's."""
    assert isinstance(y, np.ndarray), f"{what} is a {type(y).__name__}, not an array"
    xa = np.asarray(x)
    assert y.shape == xa.shape, f"{what} shape {y.shape} != input shape {xa.shape}"
    if isinstance(x, np.ndarray):
        assert y.dtype == x.dtype, f"{what} dtype {y.dtype} != input dtype {x.dtype}"


def dual(p):
    """``q`` with ``1/p + 1/q = 1``."""
    p = float(p)
    return math.inf if p == 1 else 1.0 if p == math.inf else p / (p - 1)


def row_norms(y, q):
    y = arr(y)
    return np.linalg.norm(y, ord=q, axis=-1) if y.ndim else abs(y)


def _model():
    return nn.Sequential([nn.Dense(3, 4, "bjorck"), nn.Activation("max_min"), nn.Dense(4, 2),
                          nn.Scale(2.0)])


MODEL = _model()
PARAMS = MODEL.init(seed=0)
NET = uni.random_constrained_network(3, (4,), 2, seed=1)


def batch_x(n_in=3):
    """Inputs ``(batch, n_in)`` of a network (float64: the dtype of the fixed parameters)."""
    return array_param(st.tuples(st.integers(1, 4), st.just(n_in)), dtypes=("float64",))


LABELS = Param(st.integers(1, 4).flatmap(lambda b: st.just(np.arange(b) % 2)),
               st.sampled_from([np.array([0.5]), np.array([5, 0]), np.array([-1]), None, "a",
                                np.array([[0, 1]]), np.array([], dtype=int)]))


def labels_for(kw):
    x = kw.get("x", kw.get("logits"))
    n = np.asarray(x).shape[0] if isinstance(x, np.ndarray) and np.asarray(x).ndim else 1
    return st.just(np.arange(n) % 2)


def cotangent_like(key, exact=False, fwd=None):
    """A valid cotangent: shaped like the output of ``fwd(**kwargs)`` (or like ``kwargs[key]``),
    same dtype."""
    def pool(kw):
        x = np.asarray(kw[key]) if fwd is None else None
        if fwd is not None:
            try:
                x = np.asarray(fwd(kw))
            except Exception:  # noqa: BLE001 - the forward refused: any cotangent will do
                x = np.zeros((2, 2))
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        return floats_array(x.shape, dtype.name, layouts=("plain", "strided", "readonly"))
    return pool


def bad_cotangent():
    return st.one_of(floats_array(st.sampled_from([(1,), (7, 7), (0,)])),
                     floats_array((2, 2), st.sampled_from(["int64", "complex128", "float16"])),
                     any_junk())


# ---------------------------------------------------------------------------------------------
# Checks (properties of each function's result)


def _groups(a, k, axis):
    a = np.moveaxis(np.asarray(a), axis, -1)
    return a.reshape(a.shape[:-1] + (a.shape[-1] // k, k))


def check_sorted_groups(x, y, k, axis):
    """Each group of ``y`` is the same multiset as ``x``'s and, when it holds no NaN,
    ascending [GS-1]. [GS-8]: a group holding NaN comes out as a permutation of itself or
    (NumPy's values-only k = 2 path, documented) as all NaN."""
    assert_like(y, x)
    sx, gy = np.sort(_groups(arr(x), k, axis), -1), _groups(arr(y), k, axis)
    sy = np.sort(gy, -1)
    perm = ((sx == sy) | (np.isnan(sx) & np.isnan(sy))).all(-1)
    has_nan = np.isnan(sx).any(-1)
    assert np.all(perm | (has_nan & np.isnan(gy).all(-1))), \
        "a group of the output is not a permutation of the input's group"
    # compare neighbours (not their difference: -inf - -inf is NaN)
    assert np.all((gy[..., 1:] >= gy[..., :-1])[~has_nan]), "a group of the output is not ascending"


def _axis_len(kw):
    x, axis = np.asarray(kw["x"]), kw.get("axis", -1)
    axis = -1 if axis is ABSENT else axis
    return x.shape[axis] if x.ndim and isinstance(axis, int) and -x.ndim <= axis < x.ndim else None


def gs_check(kw, y, warns):
    assert_policy(kw["x"], exact=True)
    k = kw["group_size"] if kw["group_size"] is not ABSENT else 2
    axis = kw["axis"] if kw["axis"] is not ABSENT else -1
    check_sorted_groups(kw["x"], y, k, axis)


def gs_conflicts(kw):
    n, k = _axis_len(kw), kw.get("group_size", 2)
    k = 2 if k is ABSENT else k
    return {"group_size", "x"} if n is not None and isinstance(k, int) and n % max(k, 1) else set()


def projection_check(norm_q, *, parallel=False):
    """Rows of the output within the radius (relative tolerance from the dtype), rows already
    inside unchanged, no row grows, signs kept [PR-1] [PR-7] [PR-10]; a finite input gives a
    finite output."""
    def check(kw, y, warns):
        w = kw["w"]
        assert_policy(w, name="w")
        assert_like(y, w)
        q = norm_q(kw)
        r = kw.get("radius", 1.0)
        r = 1.0 if r is ABSENT else float(r)
        wa, ya = arr(w), arr(y)
        if not finite(wa):
            return
        assert finite(ya), "finite input gave a non-finite output"
        n = wa.shape[-1] if wa.ndim else 1
        t = exact_rtol(np.asarray(w).dtype, 2 * n + 4)
        # [PR-13]: the l1 threshold cancels (|w_ij| - theta), so its error scales with
        # ||w_i||_1 + r; the l2 projection and the scalings are feasible to O(n eps r)
        bound = r * (1 + t) + (t * (np.abs(wa).sum(-1) + r) if q == 1 else 0)
        assert np.all(row_norms(ya, q) <= bound), \
            f"a row's l_{q} norm {row_norms(ya, q).max()} exceeds radius {r}"
        inside = row_norms(wa, q) <= r
        assert np.array_equal(ya[inside], wa[inside]), "a row inside the ball was changed"
        assert np.all(np.abs(ya) <= np.abs(wa) * (1 + t)), "an entry grew in magnitude"
        assert np.all(ya * wa >= 0), "an entry changed sign"
        if parallel:  # a scaling: y_i = c_i w_i with 0 < c_i <= 1
            c = row_norms(ya, 2) / np.maximum(row_norms(wa, 2), np.finfo(float).tiny)
            tiny = float(np.finfo(np.asarray(w).dtype).smallest_subnormal) * 2  # subnormals round
            assert np.allclose(ya, wa * c[..., None], rtol=t, atol=tiny), "a row was not scaled"
    return check


def bjorck_check(kw, y, warns):
    """Unless a non-convergence warning was issued (or explicitly switched off), the result
    of a finite input is orthonormal: every singular value within 0.1 of 1 [BJ-1] [BJ-6]."""
    if kw.get("return_info") is True:
        y = y[0]
    assert_policy(kw["w"], name="w")
    assert_like(y, kw["w"])
    w = arr(kw["w"])
    if not finite(w):
        return
    warned = any(issubclass(wr.category, reflip.BjorckConvergenceWarning) for wr in warns)
    if warned or kw.get("on_nonconvergence", ABSENT) not in (ABSENT, "warn", "raise"):
        return
    assert finite(y), "finite input gave a non-finite output without a warning"
    s = np.linalg.svd(arr(y).astype(np.float64), compute_uv=False)
    assert np.all(np.abs(s - 1) <= 0.1), \
        f"silently not orthonormal: singular values {s.min():.3g}..{s.max():.3g}, no warning"


def spectral_check(kw, y, warns):
    """``y`` is a positive multiple of ``w`` with ``||y||_2 >= 1``: the power-iteration
    estimate never exceeds ``sigma_max`` [PR-11]."""
    w = kw["w"]
    assert_policy(w, name="w")
    assert_like(y, w)
    wa, ya = arr(w), arr(y)
    if not finite(wa):
        return
    # per matrix of a stack; a zero matrix has no direction to keep
    big = np.abs(wa).max(axis=(-2, -1))
    nz = big > 0
    assert finite(ya[nz]), "finite non-zero input gave a non-finite output"
    t = tol_of(np.asarray(w).dtype)
    s = np.linalg.svd(ya.astype(np.float64), compute_uv=False)[..., 0]
    assert np.all(s[nz] >= 1 - t), f"spectral norm {s[nz].min()} < 1: sigma was overestimated"
    c = np.abs(ya).max(axis=(-2, -1))[nz] / big[nz]  # max-abs ratio: no overflow of sums of squares
    assert np.allclose(ya[nz], wa[nz] * c[..., None, None], rtol=1e3 * t,
                       atol=1e3 * t * float(np.abs(ya[nz]).max(initial=0))), \
        "output is not a multiple of the input"


def norm_check(oracle):
    def check(kw, v, warns):
        assert_policy(kw["w"], name="w")
        w = arr(kw["w"])
        if not finite(w):
            return
        expect = oracle(w, kw)
        t = tol_of(np.asarray(kw["w"]).dtype)
        assert np.allclose(arr(v), expect, rtol=1e3 * t, atol=0), f"got {v}, expected {expect}"
    return check


def shape_check(key, fwd_shape=None):
    def check(kw, v, warns):
        v = v[0] if isinstance(v, tuple) else v
        ref = np.asarray(kw[key]) if fwd_shape is None else None
        shape = ref.shape if fwd_shape is None else fwd_shape(kw)
        assert np.asarray(v).shape == shape, f"shape {np.asarray(v).shape} != {shape}"
    return check


# ---------------------------------------------------------------------------------------------
# reflip: primitives

GS_X = array_param(ANY, exact=True)
AXIS = Param(st.sampled_from([-1, ABSENT]), st.sampled_from([99, -99, 1.5, "a", None, True]))
GROUP = int_param(1, 4)

TARGETS = []


def target(*args, **kwargs):
    t = Target(*args, **kwargs)
    TARGETS.append(t)
    return t


target("group_sort", lambda **k: reflip.group_sort(**k),
       {"x": GS_X, "group_size": GROUP, "axis": AXIS}, gs_check, gs_conflicts)
target("group_sort_fwd", lambda **k: reflip.group_sort_fwd(**k)[0],
       {"x": GS_X, "group_size": GROUP, "axis": AXIS}, gs_check, gs_conflicts)
target("max_min", lambda x, axis=-1: reflip.max_min(x, axis=axis), {"x": GS_X, "axis": AXIS},
       lambda kw, y, w: gs_check({**kw, "group_size": 2}, y, w),
       lambda kw: gs_conflicts({**kw, "group_size": 2}))
target("full_sort", lambda x, axis=-1: reflip.full_sort(x, axis=axis), {"x": GS_X, "axis": AXIS},
       lambda kw, y, w: gs_check({**kw, "group_size": np.asarray(kw["x"]).shape[-1]}, y, w))


def _gs_fwd(kw):
    return reflip.group_sort(kw["x"], 2)


def gs_bwd_check(kw, v, warns):
    """The VJP/JVP of a permutation permutes the cotangent within each group [GS-4]."""
    other = kw["y_bar"] if "y_bar" in kw else kw["x_dot"]
    assert np.asarray(v).shape == np.asarray(kw["x"]).shape
    assert np.array_equal(np.sort(_groups(arr(v), 2, -1), -1),
                          np.sort(_groups(arr(other), 2, -1), -1), equal_nan=True), \
        "not a per-group permutation of the cotangent"


EVEN = array_param(st.tuples(st.integers(1, 3), st.sampled_from([2, 4])), exact=True)
target("group_sort_bwd",
       lambda x, y_bar: reflip.group_sort_bwd(reflip.group_sort_fwd(x, 2)[1], y_bar),
       {"x": Param(EVEN.valid), "y_bar": Param(cotangent_like("x"), bad_cotangent())},
       gs_bwd_check)
target("group_sort_jvp",
       lambda x, x_dot: reflip.group_sort_jvp(reflip.group_sort_fwd(x, 2)[1], x_dot),
       {"x": Param(EVEN.valid), "x_dot": Param(cotangent_like("x"), bad_cotangent())},
       gs_bwd_check)

BJ_PARAMS = {
    "w": array_param(MATS),
    "order": int_param(1, 3),
    "beta": real_param(0.1, 0.5, extra_invalid=(0.0, -0.5, 2.0)),
    "n_iter": Param(st.sampled_from([ABSENT, 0, 1, 3, 25, 60]),
                    st.sampled_from([10 ** 30, -1, 2.5, "10", None, True])),
    "tol": real_param(1e-12, 1e-2, extra_invalid=(-1.0, 0.0), allow=(ABSENT, None)),
    "scaling": choice_param(("frobenius", "sqrt_mn", "none")),
    "on_nonconvergence": choice_param((ABSENT, "warn", "raise", "ignore")),
    "check_finite": Param(st.sampled_from([ABSENT, True]), st.sampled_from([False, "no", 0])),
}
RAISE_DOCUMENTED = ((reflip.BjorckConvergenceError, lambda kw: kw["on_nonconvergence"] == "raise"),)


def beta_conflicts(kw):
    # beta is a parameter of the first-order iteration only (order 2, 3 use fixed series
    # coefficients) [BJ-2]
    return {"beta", "order"} if kw.get("order") != 1 else set()


def bj_conflicts(kw):
    # scaling="none"/"sqrt_mn" are refused unless the scaled w is certified inside the basin
    # [BJ-6]: w and scaling are then jointly at fault.
    return ({"scaling", "w"} if kw.get("scaling") in ("none", "sqrt_mn") else set()) | beta_conflicts(kw)


target("bjorck", lambda **k: reflip.bjorck(**k), BJ_PARAMS, bjorck_check, bj_conflicts,
       RAISE_DOCUMENTED)
target("bjorck_fwd", lambda **k: reflip.bjorck_fwd(**k)[0], BJ_PARAMS, bjorck_check,
       bj_conflicts, RAISE_DOCUMENTED)

_BJ_VJP_PARAMS = {
    "w": array_param(MAT),
    "backward": choice_param(("unrolled", "implicit")),
    "check_finite": Param(st.just(True), st.just(False)),
}


def IMPLICIT(kw):
    # the implicit derivative is singular at a rank-deficient w: documented refusal [BJ-8]
    return {"backward", "w"} if kw["backward"] == "implicit" else set()


def _bj(kw):
    return reflip.bjorck(kw["w"], check_finite=kw.get("check_finite", True),
                         on_nonconvergence="warn")


target("bjorck_bwd",
       lambda w, backward, check_finite, y_bar: reflip.bjorck_bwd(
           reflip.bjorck_fwd(w, backward=backward, check_finite=check_finite)[1], y_bar),
       {**_BJ_VJP_PARAMS, "y_bar": Param(cotangent_like("w", fwd=_bj), bad_cotangent())},
       shape_check("w"), IMPLICIT)
target("bjorck_jvp",
       lambda w, backward, check_finite, w_dot: reflip.bjorck_jvp(
           reflip.bjorck_fwd(w, backward=backward, check_finite=check_finite)[1], w_dot),
       {**_BJ_VJP_PARAMS, "w_dot": Param(cotangent_like("w"), bad_cotangent())},
       shape_check("w"), IMPLICIT)
target("basin_radius", lambda **k: reflip.basin_radius(**k),
       {"order": int_param(1, 4), "beta": real_param(0.05, 0.5, extra_invalid=(0.0, 5.0))},
       lambda kw, v, w: (None if 0 < float(v) < math.inf else (_ for _ in ()).throw(
           AssertionError(f"basin radius {v}"))), beta_conflicts)
target("bjorck_coefficients", lambda **k: reflip.bjorck_coefficients(**k),
       {"order": int_param(1, 4), "beta": real_param(0.05, 0.5, extra_invalid=(0.0, 5.0))},
       lambda kw, v, w: None if finite(np.asarray(v, dtype=float)) else (_ for _ in ()).throw(
           AssertionError(f"coefficients {v}")), beta_conflicts)

POLAR_PARAMS = {
    "w": array_param(MATS),
    "degree": choice_param((3, 5), invalid=(4, 1, 7, "5", None, 5.0, True)),
    "lower": choice_param((1e-1, 1e-2, 1e-3, 1e-6), invalid=(0.0, 0.5, 1e-7, -1e-3, "a", None)),
    "n_iter": Param(st.sampled_from([ABSENT, None, 0, 2, 8, 30]),
                    st.sampled_from([10 ** 30, -1, 2.5, "10", True])),
    "tol": real_param(1e-12, 1e-2, extra_invalid=(-1.0, 0.0), allow=(ABSENT, None)),
    "on_nonconvergence": choice_param((ABSENT, "warn", "raise", "ignore")),
    "check_finite": Param(st.sampled_from([ABSENT, True]), st.sampled_from([False, "no", 0])),
}


def polar_check(kw, y, warns):
    """Every singular value below ``1 + safety_bound`` whether or not it converged [PO-4];
    orthonormal unless a non-convergence warning was issued [BJ-10]."""
    bjorck_check(kw, y, warns)
    w = np.asarray(kw["w"])
    if not finite(w):
        return
    opts = {k: kw[k] for k in ("degree", "lower", "n_iter") if kw.get(k, ABSENT) is not ABSENT}
    bound = reflip.safety_bound(w.shape, w.dtype, **opts)
    s = np.linalg.svd(arr(y).astype(np.float64), compute_uv=False)
    assert np.all(s <= 1 + bound), f"singular value {s.max()!r} above 1 + safety_bound = {1 + bound!r}"


target("polar", lambda **k: reflip.polar(**k), POLAR_PARAMS, polar_check, None, RAISE_DOCUMENTED)
target("polar_fwd", lambda **k: reflip.polar_fwd(**k)[0], POLAR_PARAMS, polar_check, None,
       RAISE_DOCUMENTED)
target("polar_bwd",
       lambda w, backward, check_finite, y_bar: reflip.polar_bwd(
           reflip.polar_fwd(w, backward=backward, check_finite=check_finite)[1], y_bar),
       {**_BJ_VJP_PARAMS, "y_bar": Param(cotangent_like("w"), bad_cotangent())},
       shape_check("w"), IMPLICIT)
target("polar_jvp",
       lambda w, backward, check_finite, w_dot: reflip.polar_jvp(
           reflip.polar_fwd(w, backward=backward, check_finite=check_finite)[1], w_dot),
       {**_BJ_VJP_PARAMS, "w_dot": Param(cotangent_like("w"), bad_cotangent())},
       shape_check("w"), IMPLICIT)
target("polar_schedule", lambda **k: reflip.polar_schedule(**k),
       {"degree": POLAR_PARAMS["degree"], "lower": POLAR_PARAMS["lower"]},
       lambda kw, sched, w: None if len(sched) > 0 else fail("empty schedule"))
target("safety_bound", lambda **k: reflip.safety_bound(**k),
       {"shape": Param(st.sampled_from([(2, 2), (3, 5), (2, 4, 4)]),
                       st.sampled_from([(), (0, 2), (2,), (-1, 2), "2x2", None, (2.0, 2)])),
        "dtype": Param(st.sampled_from(["float32", "float64", np.float64]),
                       st.sampled_from(["float16", "int64", np.longdouble, None, 5])),
        "degree": POLAR_PARAMS["degree"], "lower": POLAR_PARAMS["lower"],
        "n_iter": POLAR_PARAMS["n_iter"]},
       lambda kw, t, w: None if t >= 0 else fail(f"bound {t}"))

PROJ = {"w": array_param(ANY), "radius": RADIUS}
target("linf_project", lambda **k: reflip.linf_project(**k),
       {**PROJ, "threshold": choice_param(("exact", "detached", ABSENT))},
       projection_check(lambda kw: 1))
target("linf_project_fwd", lambda **k: reflip.linf_project_fwd(**k)[0],
       {**PROJ, "threshold": choice_param(("exact", "detached", ABSENT))},
       projection_check(lambda kw: 1))
target("pinf_project", lambda **k: reflip.pinf_project(**k), {**PROJ, "p": P},
       projection_check(lambda kw: dual(kw["p"])))
target("pinf_project_fwd", lambda **k: reflip.pinf_project_fwd(**k)[0], {**PROJ, "p": P},
       projection_check(lambda kw: dual(kw["p"])))
target("row_scale", lambda **k: reflip.row_scale(**k), {**PROJ, "p": P},
       projection_check(lambda kw: dual(kw["p"]), parallel=True))
target("row_scale_fwd", lambda **k: reflip.row_scale_fwd(**k)[0], {**PROJ, "p": P},
       projection_check(lambda kw: dual(kw["p"]), parallel=True))

for _name, _extra in (("linf_project", {}), ("pinf_project", {"p": 2}), ("row_scale", {"p": 2}),
                      ("spectral_normalize", {})):
    _fwd, _bwd, _jvp = (getattr(reflip, f"{_name}_{s}") for s in ("fwd", "bwd", "jvp"))
    target(f"{_name}_bwd",
           lambda w, y_bar, _f=_fwd, _b=_bwd, _e=_extra: _b(_f(w, **_e)[1], y_bar),
           {"w": Param(array_param(MAT).valid), "y_bar": Param(cotangent_like("w"), bad_cotangent())},
           shape_check("w"))
    target(f"{_name}_jvp",
           lambda w, w_dot, _f=_fwd, _j=_jvp, _e=_extra: _j(_f(w, **_e)[1], w_dot),
           {"w": Param(array_param(MAT).valid), "w_dot": Param(cotangent_like("w"), bad_cotangent())},
           shape_check("w"))

SPEC = {"w": array_param(MATS),
        "u": Param(st.just(ABSENT), st.sampled_from([None, "a", np.zeros(3), np.array([np.nan])])),
        "n_iter": Param(st.integers(1, 80), st.sampled_from([10 ** 30, 0, -1, 1.5, None, True])),
        "tol": real_param(1e-12, 1e-2, extra_invalid=(-1.0,), allow=(ABSENT, None, 0.0)),
        "convention": choice_param(("constant_uv", "exact"))}
target("spectral_normalize", lambda **k: reflip.spectral_normalize(**k), SPEC, spectral_check)
target("spectral_normalize_fwd", lambda **k: reflip.spectral_normalize_fwd(**k)[0], SPEC,
       spectral_check)

target("op_norm_2", lambda w: reflip.op_norm_2(w), {"w": array_param(MATS)},
       norm_check(lambda w, kw: np.linalg.svd(w, compute_uv=False)[..., 0]))
target("op_norm_inf", lambda w: reflip.op_norm_inf(w), {"w": array_param(MATS)},
       norm_check(lambda w, kw: np.abs(w).sum(-1).max(-1)))
P_ANY = real_param(1.0, 64.0, extra_invalid=(0.5, 0.0), allow=(math.inf,))
target("norm_p_inf", lambda w, p: reflip.norm_p_inf(w, p), {"w": array_param(MATS), "p": P_ANY},
       norm_check(lambda w, kw: row_norms(w, dual(kw["p"])).max(-1)))


def net_out_check(kw, y, warns):
    assert_policy(kw["x"])
    x = np.asarray(kw["x"])
    assert np.asarray(y).shape == x.shape[:-1] + (1,), f"output shape {np.asarray(y).shape}"
    if finite(x):
        assert finite(y), "finite input gave a non-finite output"


NET_X = batch_x(3)
target("max_min_network", lambda x, network: reflip.max_min_network(x, network=network),
       {"x": NET_X, "network": Param(st.just(NET), st.sampled_from([None, "net", [NET], 3]))},
       net_out_check)
target("max_min_network_fwd", lambda x, network: reflip.max_min_network_fwd(x, network=network)[0],
       {"x": NET_X, "network": Param(st.just(NET), st.sampled_from([None, "net", [NET], 3]))},
       net_out_check)
target("max_min_network_bwd",
       lambda x, y_bar: reflip.max_min_network_bwd(reflip.max_min_network_fwd(x, network=NET)[1], y_bar),
       {"x": Param(NET_X.valid), "y_bar": Param(cotangent_like("x", fwd=lambda kw: NET(kw["x"])),
                                                bad_cotangent())},
       shape_check("x"))
target("max_min_network_jvp",
       lambda x, x_dot: reflip.max_min_network_jvp(reflip.max_min_network_fwd(x, network=NET)[1], x_dot),
       {"x": Param(NET_X.valid), "x_dot": Param(cotangent_like("x"), bad_cotangent())},
       shape_check("x", lambda kw: np.asarray(kw["x"]).shape[:-1] + (1,)))
target("get_namespace", lambda arrays: reflip.get_namespace(arrays), {"arrays": array_param(ANY)},
       aliases=lambda kw: {"arrays": ["array"]})
target("to_numpy", lambda x: reflip.to_numpy(x), {"x": array_param(ANY)},
       lambda kw, v, w: assert_like(v, kw["x"]))

# ---------------------------------------------------------------------------------------------
# reflip.universality

UP = choice_param((1, 2, math.inf), invalid=(0, 3, -1, "a", None, math.nan, True, 1.5, "inf2"))


def fail(msg):
    raise AssertionError(msg)


def dual_vector_check(kw, u, warns):
    """``||u||_q = 1`` (0 for d = 0) and ``u . d = ||d||_p`` [UN-4]."""
    d = arr(kw["d"])
    assert_like(u, kw["d"])
    if not finite(d):
        return
    p, t = float(kw["p"]), tol_of(np.asarray(kw["d"]).dtype)
    nu, nd = row_norms(arr(u), dual(p)), row_norms(d, p)
    assert np.allclose(nu[nd > 0], 1, rtol=t) and np.all(nu[nd == 0] == 0), f"||u||_q = {nu}"
    assert np.allclose((arr(u) * d).sum(-1), nd, rtol=1e2 * t, atol=1e2 * t * nd.max(initial=0)), \
        "u . d != ||d||_p"


target("dual_vector", lambda d, p: uni.dual_vector(d, p), {"d": array_param(ANY), "p": UP},
       dual_vector_check)
target("dual_exponent", lambda p: uni.dual_exponent(p), {"p": UP},
       lambda kw, q, w: None if (1 / float(kw["p"]) + 1 / q == 1) else fail(f"q = {q}"))
target("check_p", lambda p, name: uni.check_p(p, name),
       {"p": UP, "name": Param(st.sampled_from(["p", "ord"]), None)},
       lambda kw, v, w: None if v == float(kw["p"]) else fail(f"got {v}"),
       aliases=lambda kw: {"p": [kw["name"]]})


def lipschitz_pair(kw):
    """The pair (x, a), (y, b) whose slope exceeds 1: jointly invalid."""
    try:
        gap = abs(float(kw["a"]) - float(kw["b"]))
        dist = float(row_norms(arr(kw["y"]) - arr(kw["x"]), float(kw["p"])))
    except Exception:  # noqa: BLE001 - an argument of the wrong kind: no conflict to declare
        return set()
    return {"a", "b", "x", "y"} if not gap <= dist else set()


def two_point_check(kw, res, warns):
    """``g(x) = a``, ``g(y) = b`` and ``||w||_q <= 1`` [UN-4]."""
    w, c = res
    x, y, a, b = arr(kw["x"]), arr(kw["y"]), float(kw["a"]), float(kw["b"])
    assert row_norms(w, dual(float(kw["p"]))) <= 1 + 1e-12, "||w||_q > 1"
    scale = 1 + abs(a) + abs(b) + np.abs(x).sum() + np.abs(y).sum()
    # within atol of a slope of 1 the slope is clipped (documented): the values move by atol
    atol = kw.get("atol")
    err = 1e-9 * scale + (1e-6 if atol in (ABSENT, None) else float(atol))
    assert abs(w @ x + c - a) <= err and abs(w @ y + c - b) <= err, "g does not interpolate"


VEC2 = array_param(st.just((2,)))
SMALL = real_param(-2.0, 2.0)
target("two_point_interpolant", lambda **k: uni.two_point_interpolant(**k),
       {"x": VEC2, "a": SMALL, "y": VEC2, "b": SMALL, "p": UP,
        "atol": real_param(0.0, 1e-6, extra_invalid=(-1.0,), allow=(ABSENT, None))},
       two_point_check, lipschitz_pair)


def interp_conflicts(kw):
    """Data that is not 1-Lipschitz (or repeats a point with two values) is refused
    [UN-8]: points and values are then jointly at fault (so are they when their lengths
    differ)."""
    if np.shape(kw["values"])[:1] != np.shape(kw["points"])[:1]:
        return {"points", "values"}
    try:
        n, *_ = uni.lipschitz_violation(kw["points"], kw["values"], kw["p"])
    except Exception:  # noqa: BLE001
        return set()
    return {"points", "values"} if n else set()


def interp_check(kw, net, warns):
    pts, vals = arr(kw["points"]).astype(np.float64), arr(kw["values"])
    got = np.asarray(net(pts)).reshape(-1)
    assert np.allclose(got, vals, atol=1e-9 * (1 + np.abs(vals).max())), \
        f"F(points) = {got} != values {vals}"


POINTS = Param(st.integers(1, 4).flatmap(lambda n: floats_array((n, 2), "float64")),
               array_param(MAT).invalid)


def values_for(kw):
    pts = np.asarray(kw["points"]) if isinstance(kw["points"], np.ndarray) else np.zeros((2, 2))
    n = pts.shape[0] if pts.ndim else 1
    # 1-Lipschitz values in every l_p: a slope below 1/2 in l_inf on two coordinates.
    base = 0.25 * (pts[:, 0] if pts.ndim == 2 and pts.shape[1] else np.zeros(n))
    return st.just(np.asarray(base, dtype=np.float64))


target("interpolate", lambda **k: uni.interpolate(**k),
       {"points": POINTS, "values": Param(values_for, array_param(VEC).invalid), "p": UP,
        "atol": real_param(0.0, 1e-6, extra_invalid=(-1.0, "a"), allow=(ABSENT, None))},
       interp_check, interp_conflicts, ((uni.NotLipschitzError, interp_conflicts),))
target("lipschitz_violation", lambda **k: uni.lipschitz_violation(**k),
       {"points": POINTS, "values": Param(values_for, array_param(VEC).invalid), "p": UP,
        "atol": real_param(0.0, 1.0, extra_invalid=(-1.0,)), "block": int_param(1, 64)},
       lambda kw, v, w: None if v[0] == 0 else fail(f"1-Lipschitz data reported violating: {v}"),
       lambda kw: {"points", "values"} if np.shape(kw["values"])[:1] != np.shape(kw["points"])[:1] else set())

BOX = Param(st.sampled_from([(0.0, 1.0), ([0.0, 0.0], [1.0, 1.0]), ([-1.0], [0.5])]),
            st.sampled_from([None, (1.0, 0.0), ([0] * 10, [1] * 10), (0.0, 1e300),
                             ([0.0, math.nan], [1.0, 1.0]), "box", (0.0,), ([0, 0], [1])]))
DELTA = real_param(0.2, 1.0, extra_invalid=(0.0, -1.0, 1e-5, 5e-324, 1e-100))


def half_norm(pts):
    """A 1-Lipschitz function in every l_p."""
    return 0.5 * np.abs(np.asarray(pts)).max(axis=-1)


def approx_check(kw, a, warns):
    got = np.asarray(a.network(a.points)).reshape(-1)
    assert np.allclose(got, half_norm(a.points), atol=1e-9), "F != f on the net"


target("approximate", lambda **k: uni.approximate(**k),
       {"f": Param(st.just(half_norm), st.sampled_from([None, "f", lambda p: 10 * p.sum(-1)])),
        "box": BOX, "delta": DELTA, "p": UP,
        "max_points": int_param(1, 400), "atol": Param(st.just(ABSENT), st.sampled_from(["a", -1.0, True]))},
       approx_check,
       lambda kw: {"delta", "max_points", "box"},  # a net larger than max_points
       ((uni.NotLipschitzError, lambda kw: kw["f"] is not half_norm),))


def delta_net_check(kw, pts, warns):
    lo, hi = (np.atleast_1d(np.asarray(b, dtype=float)) for b in kw["box"])
    assert np.all(pts >= lo - 1e-12) and np.all(pts <= hi + 1e-12), "a net point outside the box"


target("delta_net", lambda **k: uni.delta_net(**k), {"box": BOX, "delta": DELTA, "p": UP},
       delta_net_check)
target("interpolant_size", lambda **k: uni.interpolant_size(**k),
       {"n_points": int_param(1, 50), "n": int_param(1, 10)},
       lambda kw, s, w: None if s.n_in == kw["n"] and s.depth >= 1 else fail(repr(s)))


def eval_check(fn):
    """The network computes ``fn(kwargs, x)`` on random inputs."""
    def check(kw, net, warns):
        x = np.random.default_rng(0).uniform(-2, 2, (5, net.n_in))
        got, want = np.asarray(net(x)).reshape(-1), np.asarray(fn(kw, x)).reshape(-1)
        assert np.allclose(got, want, atol=1e-9), f"network computes {got}, expected {want}"
    return check


target("norm_network", lambda **k: uni.norm_network(**k),
       {"n": int_param(1, 4), "ord": choice_param((1, math.inf), invalid=(2, 0, "a", None)),
        "p": choice_param((ABSENT, None, 1, math.inf), invalid=(0, "a", 3))},
       eval_check(lambda kw, x: np.linalg.norm(x, ord=kw["ord"], axis=-1)),
       lambda kw: {"ord", "p", "n"})  # ||.||_1 needs p = 1 when n > 1 [UN-5]
target("abs_network", lambda: uni.abs_network(), {}, eval_check(lambda kw, x: np.abs(x[:, 0])))
target("affine_network", lambda **k: uni.affine_network(**k),
       {"w": array_param(st.just((3,)), dtypes=("float64",)), "c": SMALL},
       eval_check(lambda kw, x: x @ arr(kw["w"]) + kw["c"]))
NETS = Param(st.just((uni.affine_network(np.array([0.5, 0.0, 0.0]), 0.0),
                      uni.affine_network(np.array([0.0, -0.5, 0.0]), 1.0))),
             st.sampled_from([(), (None,), ("net",), (NET, uni.abs_network())]))
# "network 1 ..." names the second positional argument of *networks
target("lattice_max", lambda networks: uni.lattice_max(*networks), {"networks": NETS},
       eval_check(lambda kw, x: np.maximum(*[n(x).reshape(-1) for n in kw["networks"]])),
       aliases=lambda kw: {"networks": ["network"]})
target("lattice_min", lambda networks: uni.lattice_min(*networks), {"networks": NETS},
       eval_check(lambda kw, x: np.minimum(*[n(x).reshape(-1) for n in kw["networks"]])),
       aliases=lambda kw: {"networks": ["network"]})
target("deepen", lambda **k: uni.deepen(**k),
       {"net": Param(st.just(NET), st.sampled_from([None, "net", 3])),
        "depth": Param(st.integers(NET.depth, NET.depth + 3), st.sampled_from([0, -1, 1.5, "a", 10 ** 30]))},
       eval_check(lambda kw, x: NET(x)),
       lambda kw: {"depth"})  # below the network's own depth
target("random_constrained_network", lambda **k: uni.random_constrained_network(**k),
       {"n_in": int_param(1, 4), "widths": Param(st.sampled_from([(), (2,), (4, 2)]),
                                                 st.sampled_from([(3,), (0,), (-2,), "a", None, (2.0,)])),
        "p": UP, "seed": int_param(0, 5), "bits": int_param(1, 12),
        "bias_scale": real_param(0.0, 2.0, extra_invalid=(-1.0,)), "n_out": int_param(1, 3)},
       lambda kw, net, w: None if net.satisfies_constraints(kw["p"]) else fail("constraints violated"))
target("reduction_layers", lambda **k: uni.reduction_layers(**k),
       {"w": array_param(st.just((4, 2)), dtypes=("float64",)),
        "b": array_param(st.just((4,)), dtypes=("float64",)),
        "stages": Param(st.sampled_from([[("min", 2), ("max", 1)], [("max", 1)], [("min", 4), ("max", 1)]]),
                        st.sampled_from([[("avg", 1)], [("min", 3)], [("min", 0)], None, "min"])),
        "pad": choice_param(("duplicate", "zero"))})
target("Dense(universality)", lambda **k: uni.Dense(**k),
       {"W": array_param(st.just((2, 3)), dtypes=("float64",)),
        "b": array_param(st.just((2,)), dtypes=("float64",))})
target("Select", lambda **k: uni.Select(**k),
       {"index": Param(st.just(np.array([0, 2])), st.sampled_from([np.array([5]), np.array([-1]),
                                                                   np.array([0.5]), None, "a"])),
        "n_in": int_param(3, 5)})
target("MaxMinNetwork", lambda layers: uni.MaxMinNetwork(layers),
       {"layers": Param(st.just(NET.layers), st.sampled_from([(), None, (1, 2), "abc",
                                                              (NET.layers[0], NET.layers[0])]))},
       eval_check(lambda kw, x: NET(x)), aliases=lambda kw: {"layers": ["layer"]})

# ---------------------------------------------------------------------------------------------
# reflip.nn

FEATURES = Param(st.integers(1, 4), st.sampled_from([0, -1, 1.5, "3", None, True, 10 ** 30]))
CONSTRAINT = choice_param(nn.CONSTRAINTS)


def dense_conflicts(kw):
    # options belong to the chosen constraint: n_iter only to the iterative ones; 'pinf'
    # needs the option p, 'unit_row' one output
    names = {"n_iter", "constraint"} if kw.get("n_iter") is not ABSENT else set()
    return names | ({"constraint", "out_features", "p"} if kw["constraint"] in ("pinf", "unit_row") else set())


target("nn.Dense", lambda **k: nn.Dense(**k),
       {"in_features": FEATURES, "out_features": FEATURES, "constraint": CONSTRAINT,
        "bias": bool_param(), "init": choice_param(("orthogonal", "normal")),
        "n_iter": Param(st.sampled_from([ABSENT, ABSENT, 5]), st.sampled_from([10 ** 30, -1, "a"]))},
       lambda kw, layer, w: None if isinstance(layer, nn.Layer) else fail(repr(layer)),
       dense_conflicts)
target("nn.Activation", lambda **k: nn.Activation(**k),
       {"name": choice_param(nn.ACTIVATIONS),
        "group_size": Param(st.sampled_from([ABSENT, None, 2, 4]), st.sampled_from([0, -2, 1.5, "a", 10 ** 30]))},
       None, lambda kw: {"group_size", "name"})  # group_size: required for, and only for, group_sort
target("nn.Scale", lambda factor: nn.Scale(factor), {"factor": real_param(1e-3, 10.0, extra_invalid=(0.0, -1.0))})
target("nn.Sequential", lambda layers: nn.Sequential(layers),
       {"layers": Param(st.just(list(MODEL.layers)),
                        st.sampled_from([[], None, [1, 2], "layers", [nn.Dense(3, 4), nn.Dense(5, 2)]]))},
       lambda kw, m, w: None if len(m.layers) == len(kw["layers"]) else fail("layers lost"),
       aliases=lambda kw: {"layers": ["layer"]})


def init_check(kw, params, warns):
    dt = np.dtype(kw["dtype"]) if kw["dtype"] is not ABSENT else np.dtype("float64")
    for p in params:
        for name, a in p.items():
            assert a.dtype == dt, f"{name} has dtype {a.dtype}, asked {dt}"
            assert finite(a), f"{name} not finite"
    assert any(np.any(p["W"]) for p in params if "W" in p), "all weights are zero"


target("Sequential.init", lambda **k: MODEL.init(**k),
       {"xp": Param(st.sampled_from([ABSENT, np]), st.sampled_from([None, "numpy", math])),
        "seed": Param(st.sampled_from([ABSENT, 0, 7, np.random.SeedSequence(1)]),
                      st.sampled_from([-1, 1.5, "s", True, [1, -2], np.random.default_rng(1)])),
        "dtype": Param(st.sampled_from(["float32", "float64", np.float32, ABSENT]),
                       st.sampled_from(["int32", np.int32, "float16", "complex128", 5, None, "x"]))},
       init_check)


def out_check(kw, y, warns):
    """Output ``(batch, 2)``; a finite row gives a finite row, a row holding NaN gives NaN
    (the two policies of issue 14 item 4 are "reject" or "propagate")."""
    y = y[0] if isinstance(y, tuple) else y
    assert_policy(kw["x"])
    x = arr(kw["x"])
    assert np.asarray(y).shape == (x.shape[0], 2), f"output shape {np.asarray(y).shape}"
    rows_finite(x, y)


def rows_finite(x, v):
    """Rows of ``v`` derived from finite rows of ``x`` are finite; from a NaN row, NaN."""
    v = arr(v)
    good = np.isfinite(x).reshape(x.shape[0], -1).all(-1)
    vr = v.reshape(v.shape[0], -1) if v.ndim else v.reshape(1, 1)
    if vr.shape[0] != x.shape[0]:
        return
    assert np.isfinite(vr[good]).all(), "a finite input row gave a non-finite value"
    nan_rows = np.isnan(x).reshape(x.shape[0], -1).any(-1)
    assert np.isnan(vr[nan_rows]).any(-1).all() if vr[nan_rows].size else True, \
        "an input row holding NaN gave a finite, plausible value"


X3 = batch_x(3)
PARAMS_P = Param(st.just(PARAMS), st.sampled_from([None, [], PARAMS[:2], "p",
                                                   [{"W": np.zeros((9, 9)), "b": np.zeros(9)}, {}, {}, {}]]))
MODEL_P = Param(st.just(MODEL), st.sampled_from([None, "model", NET]))
target("Sequential.forward", lambda params, x: MODEL.forward(params, x),
       {"params": PARAMS_P, "x": X3}, out_check)
target("Sequential.__call__", lambda params, x: MODEL(params, x), {"params": PARAMS_P, "x": X3},
       out_check)


def _y(kw):
    return MODEL(PARAMS, kw["x"])


target("Sequential.backward",
       lambda x, y_bar, input_only: MODEL.backward(MODEL.forward(PARAMS, x)[1], y_bar,
                                                   input_only=input_only),
       {"x": Param(X3.valid), "y_bar": Param(cotangent_like("x", fwd=_y), bad_cotangent()),
        "input_only": bool_param()},
       lambda kw, v, w: None if np.asarray(v[0]).shape == np.asarray(kw["x"]).shape else fail("x_bar shape"))

# lipschitz
PQ = {"p": P, "q": choice_param((ABSENT, None, math.inf), invalid=(3, "a", 0))}


def pq_conflicts(kw):
    # q != p only with q = inf [NN-3]
    return {"p", "q"}


target("lipschitz.operator_norm", lambda **k: lipschitz.operator_norm(**k),
       {"w": array_param(MAT), **PQ},
       lambda kw, v, w: None if not finite(kw["w"]) or (finite(v) and v >= 0) else fail(f"{v}"),
       pq_conflicts)
target("lipschitz.upper_bound", lambda **k: lipschitz.upper_bound(**k),
       {"model": MODEL_P, "params": PARAMS_P, **PQ},
       lambda kw, v, w: None if finite(v) and v > 0 else fail(f"{v}"), pq_conflicts)


def bounded_by_upper(kw, v, warns):
    """Local constants are lower bounds of the certified global one [NN-4]."""
    x = arr(kw["x"])
    rows_finite(x, v)
    p = kw.get("p", 2)
    q = kw.get("q")
    q = None if q is ABSENT else q
    u = lipschitz.upper_bound(MODEL, PARAMS, p, q)
    vals = arr(v)
    assert np.all(vals[np.isfinite(vals)] <= u * (1 + 1e-9)), f"local {vals.max()} > upper {u}"


NN_X = {"model": MODEL_P, "params": PARAMS_P, "x": X3}
target("lipschitz.jacobians", lambda **k: lipschitz.jacobians(**k), NN_X,
       lambda kw, v, w: rows_finite(arr(kw["x"]), v))
target("lipschitz.local_lipschitz", lambda **k: lipschitz.local_lipschitz(**k), {**NN_X, **PQ},
       bounded_by_upper, pq_conflicts)
target("lipschitz.gradient_lower_bound", lambda **k: lipschitz.gradient_lower_bound(**k),
       {**NN_X, **PQ},
       lambda kw, v, w: bounded_by_upper({**kw, "x": arr(kw["x"])[:1]}, np.array([v]), w)
       if finite(kw["x"]) else None,
       pq_conflicts)
OUTPUT = Param(st.sampled_from([0, 1]), st.sampled_from([2, -3, 1.5, "a", np.array([0, 1, 0, 1, 0, 1])]))
target("lipschitz.input_gradients", lambda **k: lipschitz.input_gradients(**k),
       {**NN_X, "output": OUTPUT}, lambda kw, v, w: rows_finite(arr(kw["x"]), v))
target("lipschitz.input_gradient_norms", lambda **k: lipschitz.input_gradient_norms(**k),
       {**NN_X, "p": P, "output": OUTPUT}, lambda kw, v, w: rows_finite(arr(kw["x"]), v))
PAIRS = {"x2": Param(st.just(ABSENT), X3.invalid),
         "n_pairs": Param(st.sampled_from([ABSENT, None, 1, 3]),
                          st.sampled_from([0, -1, 10 ** 30, 1.5, "a"])),
         "seed": Param(st.sampled_from([0, 3]), st.sampled_from([-1, 1.5, "s"]))}
target("lipschitz.pair_ratios", lambda **k: lipschitz.pair_ratios(**k), {**NN_X, **PQ, **PAIRS},
       lambda kw, v, w: None if not (finite(kw["x"]) and finite(kw.get("x2", 0.0))) or finite(v)
       else fail("non-finite ratio"),
       lambda kw: pq_conflicts(kw) | {"x"})  # one row has no distinct pair
target("lipschitz.pair_lower_bound", lambda **k: lipschitz.pair_lower_bound(**k),
       {**NN_X, **PQ, **PAIRS},
       lambda kw, v, w: None if not (finite(kw["x"]) and finite(kw.get("x2", 0.0))) or finite(v)
       else fail("non-finite bound"),
       lambda kw: pq_conflicts(kw) | {"x"})
target("lipschitz.unit_activity", lambda **k: lipschitz.unit_activity(**k), NN_X)
target("lipschitz.describe", lambda **k: lipschitz.describe(**k),
       {"values": array_param(VEC), "target": real_param(0.5, 2.0),
        "rtol": real_param(0.0, 0.1, extra_invalid=(-1.0,))},
       lambda kw, d, w: None if 0 <= d["fraction_at_target"] <= 1 or not finite(kw["values"])
       else fail(repr(d)))

# certify and attack
LOGITS = array_param(st.tuples(st.integers(1, 4), st.just(2)))
LAB = Param(labels_for, st.sampled_from([np.array([0.5]), np.array([5]), np.array([-1]), None, "a",
                                          np.array([[0, 1]])]))
LCONST = real_param(0.1, 4.0, extra_invalid=(0.0, -1.0))
target("certify.margins", lambda **k: certify.margins(**k), {"logits": LOGITS, "labels": LAB},
       lambda kw, m, w: None if np.asarray(m).shape == (arr(kw["logits"]).shape[0],) else fail("shape"))
target("certify.certified_radius", lambda **k: certify.certified_radius(**k),
       {"logits": LOGITS, "labels": LAB, "L": LCONST, **PQ},
       lambda kw, r, w: None if not finite(kw["logits"]) or np.all(arr(r) >= 0) else fail(f"{r}"),
       pq_conflicts)
target("certify.certified_accuracy", lambda **k: certify.certified_accuracy(**k),
       {"logits": LOGITS, "labels": LAB, "L": LCONST,
        "eps": Param(st.sampled_from([0.0, 0.1, np.array([0.0, 0.5])]), st.sampled_from([-1.0, math.nan, "a", None])),
        **PQ},
       lambda kw, a, w: None if np.all((arr(a) >= 0) & (arr(a) <= 1)) else fail(f"{a}"), pq_conflicts)
target("certify.output_constant", lambda q: certify.output_constant(q), {"q": P},
       lambda kw, c, w: None if 1 <= c <= 2 else fail(f"{c}"))
EPS = real_param(0.0, 0.5, extra_invalid=(-1.0,))
STEPS = Param(st.integers(1, 3), st.sampled_from([10 ** 30, 0, -1, 1.5, "a", None]))


def attack_check(kw, xa, warns):
    x = arr(kw["x"])
    assert np.asarray(xa).shape == x.shape, "adversarial batch shape"
    if finite(x):
        d = row_norms(arr(xa) - x, float(kw["p"]))
        assert np.all(d <= float(kw["eps"]) * (1 + 1e-6) + 1e-12), f"left the eps-ball: {d.max()}"


ATTACK = {"model": MODEL_P, "params": PARAMS_P, "x": X3, "labels": LAB, "eps": EPS,
          "p": choice_param((2, math.inf), invalid=(1, 0, 3, "a", None)),
          "steps": STEPS, "seed": Param(st.just(0), st.sampled_from([-1, "s"])),
          "loss": choice_param(("margin", "cross_entropy"))}
target("attack.pgd_attack", lambda **k: certify.pgd_attack(**k), ATTACK, attack_check)
target("certify.check_certificates", lambda **k: certify.check_certificates(**k),
       {**{k: v for k, v in ATTACK.items() if k not in ("seed", "loss")}, "L": LCONST},
       lambda kw, r, w: None if len(r["broken_certified"]) == 0 or float(kw["L"]) < 2.0
       else fail(f"certified and broken: {r}"))

# losses
target("losses.kr_dual", lambda **k: losses.kr_dual(**k),
       {"f_p": array_param(VEC), "f_q": array_param(VEC)},
       lambda kw, v, w: None if not (finite(kw["f_p"]) and finite(kw["f_q"])) or finite(v)
       else fail(f"{v}"))
def loss_check(kw, v, warns):
    if finite(kw["logits"]):
        assert finite(v) and float(np.asarray(v).sum()) >= 0, f"loss {v}"


def loss_target(name, extra):
    fwd, bwd = getattr(losses, f"{name}_fwd"), getattr(losses, f"{name}_bwd")
    target(f"losses.{name}", lambda **k: getattr(losses, name)(**k),
           {"logits": LOGITS, "labels": LAB, **extra}, loss_check)
    target(f"losses.{name}_bwd",
           lambda logits, value_bar: bwd(fwd(logits, np.arange(len(logits)) % 2)[1], value_bar),
           {"logits": Param(LOGITS.valid), "value_bar": real_param(-2.0, 2.0)},
           shape_check("logits"))


loss_target("multi_margin", {"margin": real_param(0.0, 2.0, extra_invalid=(-1.0,))})
loss_target("cross_entropy", {})
target("losses.kr_dual_bwd",
       lambda f_p, value_bar: losses.kr_dual_bwd(losses.kr_dual_fwd(f_p, f_p)[1], value_bar),
       {"f_p": Param(array_param(VEC).valid), "value_bar": real_param(-2.0, 2.0)})

# optim
LR = real_param(1e-4, 1.0, extra_invalid=(0.0, -1.0))
BETAS = Param(st.sampled_from([(0.9, 0.999), (0.0, 0.5)]),
              st.sampled_from([(1.5, 0.9), (0.9,), "b", None, (-0.1, 0.9)]))


def opt_step(opt):
    grads = [{k: np.ones_like(v) for k, v in p.items()} for p in PARAMS]
    new, _ = opt.update(PARAMS, grads, opt.init(PARAMS))
    assert all(finite(a) for p in new for a in p.values()), "non-finite parameters after a step"


target("optim.SGD", lambda **k: optim.SGD(**k),
       {"lr": LR, "momentum": real_param(0.0, 0.99, extra_invalid=(-0.5, 1.5)), "nesterov": bool_param()},
       lambda kw, o, w: opt_step(o),
       lambda kw: {"nesterov", "momentum"})  # Nesterov needs momentum > 0
target("optim.Adam", lambda **k: optim.Adam(**k),
       {"lr": LR, "betas": BETAS, "eps": real_param(1e-12, 1e-3, extra_invalid=(0.0, -1.0))},
       lambda kw, o, w: opt_step(o))
target("optim.AggMo", lambda **k: optim.AggMo(**k),
       {"lr": LR, "betas": Param(st.sampled_from([(0.0, 0.9, 0.99), (0.5,)]), BETAS.invalid)},
       lambda kw, o, w: opt_step(o))
target("optim.step_decay", lambda **k: optim.step_decay(**k),
       {"lr0": LR, "factor": real_param(0.01, 1.0, extra_invalid=(0.0, -1.0)),
        "every": int_param(1, 100)},
       lambda kw, s, w: None if s(0) == kw["lr0"] and s(1000) <= s(10) <= s(0) else fail("schedule"))
target("optim.global_norm", lambda tree: optim.global_norm(tree),
       {"tree": Param(st.just(PARAMS), st.sampled_from([None, "t", [{"W": "a"}], [{"W": np.array([np.nan])}]]))},
       lambda kw, v, w: None if kw["tree"] is not PARAMS or (finite(v) and v > 0) else fail(f"{v}"))
target("optim.tree_map", lambda fn, tree: optim.tree_map(fn, tree),
       {"fn": Param(st.just(np.negative), st.sampled_from([None, "f", 3])),
        "tree": Param(st.just(PARAMS), st.sampled_from([None, 3, "t"]))})

# train


def fit_data(kw):
    return st.integers(1, 3).map(lambda n: [(np.linspace(-1, 1, 12).reshape(4, 3),
                                             np.array([0, 1, 0, 1]))] * n)


BAD_DATA = st.sampled_from([None, 3, [(np.full((4, 3), np.nan), np.array([0, 1, 0, 1]))],
                            [(np.zeros((4, 5)), np.array([0, 1, 0, 1]))], [("x", "y")]])


def fit_check(kw, res, warns):
    params, history = res
    assert all(finite(a) for p in params for a in p.values()), "non-finite parameters"
    assert len(history.loss) == kw["steps"], f"{len(history.loss)} losses for {kw['steps']} steps"


target("train.fit",
       lambda **k: train.fit(MODEL, PARAMS, optimizer=optim.SGD(0.01), progress=False, **k),
       {"data": Param(fit_data, BAD_DATA), "steps": STEPS,
        "loss": choice_param(("cross_entropy", "multi_margin")),
        "clip_norm": real_param(0.1, 10.0, extra_invalid=(0.0, -1.0), allow=(ABSENT, None)),
        "seed": Param(st.just(0), st.sampled_from([-1, "s"]))},
       fit_check,
       lambda kw: {"data", "steps"})  # fewer batches than steps
target("train.minibatches", lambda x, batch_size: train.minibatches(x, np.arange(len(x)) % 2, batch_size=batch_size),
       {"x": Param(X3.valid), "batch_size": Param(st.integers(1, 4), st.sampled_from([0, -1, 1.5, None, 10 ** 30]))},
       None, lambda kw: {"batch_size", "x"})

CRITIC = nn.Sequential([nn.Dense(3, 2, "bjorck"), nn.Activation("max_min"), nn.Dense(2, 1, "bjorck")])
CRITIC_PARAMS = CRITIC.init(seed=0)


def objective_check(params, batch):
    def check(kw, objective, warns):
        value, grads = objective(params, batch)
        assert finite(value), f"objective {value}"
        assert [sorted(g) for g in grads] == [sorted(p) for p in params], "grads not shaped like params"
    return check


target("train.supervised_objective", lambda **k: train.supervised_objective(MODEL, **k),
       {"loss": choice_param(("cross_entropy", "multi_margin"), invalid=("kr_dual", "nope", 3, None)),
        "margin": Param(st.just(ABSENT), st.sampled_from([-1.0, "a", math.nan]))},
       lambda kw, o, w: objective_check(PARAMS, (np.ones((2, 3)), np.array([0, 1])))(kw, o, w),
       lambda kw: {"margin", "loss"})  # margin belongs to multi_margin only
target("train.kr_objective", lambda model: train.kr_objective(model),
       {"model": Param(st.just(CRITIC), st.sampled_from([None, "m", MODEL, NET]))},
       lambda kw, o, w: objective_check(CRITIC_PARAMS, (np.ones((2, 3)), np.zeros((3, 3))))(kw, o, w)
       if kw["model"] is CRITIC else None)


def minibatch_check(kw, mb, warns):
    batch = next(iter(mb(np.random.default_rng(0))))
    assert len(batch) == 2 and batch[0].shape[1:] == np.shape(kw["x"])[1:], "batch layout"


target("train.Minibatches",
       lambda x, batch_size, shuffle, drop_last: train.Minibatches(
           x, np.arange(np.shape(x)[0] if np.ndim(x) else 1) % 2, batch_size=batch_size,
           shuffle=shuffle, drop_last=drop_last),
       {"x": X3,
        "batch_size": Param(st.integers(1, 4), st.sampled_from([0, -1, 1.5, None, 10 ** 30])),
        "shuffle": bool_param(), "drop_last": bool_param()},
       minibatch_check, lambda kw: {"batch_size", "x", "drop_last"},  # a batch larger than the data
       aliases=lambda kw: {"x": ["arrays"]})  # x is arrays[0] of *arrays
target("train.History", lambda **k: train.History(**k), {"loss": Param(st.just([]), None)})
def config_check(kw, model, warns):
    """Every key given in the description keeps its value (omitted ones take defaults)."""
    got = model.config()["layers"]
    given_ = kw["config"]["layers"]
    assert len(got) == len(given_) and all(
        all(g.get(k) == v for k, v in c.items()) for g, c in zip(got, given_, strict=True)), \
        f"config round trip: {got} != {given_}"


target("io.model_from_config", lambda config: io.model_from_config(config),
       {"config": Param(st.just(MODEL.config()),
                        st.sampled_from([
                            None, {}, "config", {"type": "Sequential"},
                            {"type": "Sequential", "layers": [{"type": "Nope"}]},
                            {"type": "Sequential",
                             "layers": [{"type": "Dense", "in_features": -1, "out_features": 2}]}]))},
       config_check)
target("optim.Optimizer.update", lambda grads, lr: optim.SGD(lr).update(PARAMS, grads, optim.SGD(lr).init(PARAMS)),
       {"grads": Param(st.just([{k: np.ones_like(v) for k, v in p.items()} for p in PARAMS]),
                       st.sampled_from([None, [], [{"W": 1.0}], [{k: np.ones((7, 7)) for k in p} for p in PARAMS]])),
        "lr": LR},
       lambda kw, r, w: None if all(finite(a) for p in r[0] for a in p.values()) else fail("non-finite step"))
for _loss in ("kr_dual", "multi_margin", "cross_entropy"):
    _fwd = getattr(losses, f"{_loss}_fwd")
    if _loss == "kr_dual":
        target("losses.kr_dual_fwd", lambda _f=_fwd, **k: _f(**k)[0],
               {"f_p": array_param(VEC), "f_q": array_param(VEC)})
    else:
        target(f"losses.{_loss}_fwd", lambda _f=_fwd, **k: _f(**k)[0],
               {"logits": LOGITS, "labels": LAB},
               lambda kw, v, w: None if not finite(kw["logits"]) or finite(v) else fail(f"loss {v}"))

# io

_GOOD = os.path.join(_TMP, "good.npz")
io.save(_GOOD, PARAMS, MODEL)
with open(_GOOD, "rb") as _f:
    _GOOD_BYTES = _f.read()


def _bad_files():
    rng = np.random.default_rng(0)
    flipped = bytearray(_GOOD_BYTES)
    flipped[len(flipped) // 2] ^= 0xFF
    pickled = os.path.join(_TMP, "pickled.npy")
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with open(pickled, "rb") as f:
        pickled_bytes = f.read()
    return [b"", _GOOD_BYTES[: len(_GOOD_BYTES) // 2], bytes(flipped), rng.bytes(200),
            pickled_bytes, b"PK\x03\x04" + rng.bytes(60), "<directory>", "<missing>", None, 5]


_COUNTER = iter(range(10 ** 9))


def _as_path(content):
    """Write ``content`` to a fresh file; its path (the parameter the message must name)."""
    if content is None or isinstance(content, int):
        return content
    path = os.path.join(_TMP, f"f{next(_COUNTER)}.npz")
    if content == "<directory>":
        os.makedirs(path)
    elif content != "<missing>":
        with open(path, "wb") as f:
            f.write(content)
    return path


FILES = Param(st.just(_GOOD_BYTES).map(_as_path), st.sampled_from(_bad_files()).map(_as_path))


def path_aliases(kw):
    return {"path": [str(kw["path"]), os.path.basename(str(kw["path"]))]}


def load_check(kw, params, warns):
    params = params[1] if isinstance(params, tuple) else params
    assert len(params) == len(PARAMS) and all(
        np.array_equal(a[k], b[k]) for a, b in zip(params, PARAMS, strict=True) for k in b), "round trip"


# A missing file or a directory raises the OSError Python's open() raises (it names the path):
# the convention of every file API, kept.
OS_ERRORS = ((OSError, lambda kw: True),)
target("io.load", lambda path: io.load(path), {"path": FILES}, load_check, documented=OS_ERRORS,
       aliases=path_aliases)
target("io.load_model", lambda path: io.load_model(path), {"path": FILES}, load_check,
       documented=OS_ERRORS, aliases=path_aliases)
target("io.save", lambda path, params: (io.save(path, params, MODEL), io.load_model(path))[1],
       {"path": Param(st.just(None).map(lambda _: os.path.join(_TMP, f"s{next(_COUNTER)}.npz")),
                      st.sampled_from([None, 5, _TMP, os.path.join(_TMP, "no", "such", "dir.npz")])),
        "params": PARAMS_P},
       load_check, documented=OS_ERRORS, aliases=path_aliases)

# ---------------------------------------------------------------------------------------------
# The tests

#: Public names that are not functions to fuzz, with the reason.
NOT_FUZZED = {
    "REGISTRY": "a table of the primitives fuzzed here", "Primitive": "a record type",
    "BjorckConvergenceError": "an exception", "BjorckConvergenceWarning": "a warning",
    "NotLipschitzError": "an exception", "INV_SQRT2": "a constant",
    "BjorckInfo": "a record", "NetworkSize": "a record", "Approximation": "a record",
    "ACTIVATIONS": "a constant", "CONSTRAINTS": "a constant", "Layer": "an abstract base",
    "SequentialResiduals": "a record", "attack": "a module (its functions are targets)",
    "certify": "a module", "io": "a module", "lipschitz": "a module", "losses": "a module",
    "optim": "a module", "train": "a module", "save": "io.save", "load": "io.load",
    "load_model": "io.load_model", "LOSSES": "a table of the losses fuzzed here",
    "ATTACK_LOSSES": "a constant", "INITS": "a constant",
    "Optimizer": "the base class: its update is the target Optimizer.update",
}


def test_every_public_function_is_a_target():
    """A public name with no target is a function nobody fuzzes: name it here."""
    names = {t.name.split("(")[0].split(".")[-1] for t in TARGETS}
    public = set(reflip.__all__) | set(uni.__all__) | set(nn.__all__)
    for module in (certify, io, lipschitz, losses, optim, train, nn.attack):
        public |= set(module.__all__)
    def fuzzable(name):
        obj = next(getattr(m, name) for m in (reflip, uni, nn, certify, io, lipschitz, losses,
                                              optim, train, nn.attack) if hasattr(m, name))
        return callable(obj) and not (isinstance(obj, type) and issubclass(obj, Warning))

    missing = sorted(n for n in public if n not in names and n not in NOT_FUZZED
                     and not n.endswith("Residuals") and fuzzable(n))
    assert not missing, f"public names with no fuzz target: {missing}"


#: Calls the fuzzer found breaking the rule, kept as explicit cases through the same
#: classifier (a random run may not draw them again): (target, arguments, invalid ones).
FOUND = [
    # a tol of 1e300 makes the convergence test vacuous: far from orthonormal, no warning
    ("bjorck", {"w": np.diag([2.0, 0.5]), "tol": 1e300}, {"tol"}),
    ("polar", {"w": np.zeros((4, 2)), "tol": 1e300, "n_iter": 30, "on_nonconvergence": "raise"},
     {"tol", "w"}),
    ("op_norm_2", {"w": np.full((2, 2), np.nan)}, {"w"}),  # NumPy's LinAlgError
    ("reduction_layers", {"w": np.ones((4, 2)), "b": np.zeros(4), "stages": [("min", 3)],
                          "pad": "duplicate"}, {"stages"}),
    ("to_numpy", {"x": None}, {"x"}),  # AttributeError: no __dlpack__
    ("to_numpy", {"x": [1.0, 2.0]}, {"x"}),
    # found on the first run (f33a3a9) and since fixed: guards
    ("group_sort", {"x": [1.0, 2.0], "group_size": 2, "axis": -1}, {"x"}),  # message named nothing
    ("group_sort_bwd", {"x": np.zeros((1, 2)), "y_bar": None}, {"y_bar"}),
    ("op_norm_inf", {"w": 1.5}, {"w"}),  # array_api_compat's "non-scalar array input"
    ("lipschitz.jacobians", {"model": None, "params": PARAMS, "x": np.ones((2, 3))}, {"model"}),
    ("lipschitz.upper_bound", {"model": NET, "params": PARAMS, "p": 2, "q": ABSENT}, {"model"}),
    ("lipschitz.upper_bound", {"model": MODEL, "params": "p", "p": 2, "q": ABSENT}, {"params"}),
    ("nn.Sequential", {"layers": None}, {"layers"}),
    ("Sequential.init", {"xp": None, "seed": 0, "dtype": "float64"}, {"xp"}),
    ("Sequential.init", {"xp": np, "seed": np.random.SeedSequence(1), "dtype": "float64"}, set()),
    ("train.supervised_objective", {"loss": "cross_entropy", "margin": 1.0}, {"margin"}),
    ("train.supervised_objective", {"loss": "multi_margin", "margin": -1.0}, {"margin"}),
    ("train.kr_objective", {"model": None}, {"model"}),
    ("io.model_from_config", {"config": {"type": "Sequential", "layers": [
        {"type": "Dense", "in_features": 2, "out_features": 2}]}}, {"config"}),
    ("attack.pgd_attack", {"model": None, "params": PARAMS, "x": np.ones((2, 3)),
                           "labels": np.array([0, 1]), "eps": 0.1, "p": 2, "steps": 2, "seed": 0,
                           "loss": "margin"}, {"model"}),
]


@pytest.mark.parametrize("name, kwargs, invalid", FOUND,
                         ids=[f"{n}-{k}" for k, (n, _, _) in enumerate(FOUND)])
def test_fuzz_findings(name, kwargs, invalid):
    target_ = next(t for t in TARGETS if t.name == name)
    check_call(target_, kwargs, frozenset(invalid), CALL_SECONDS)


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz(target, data):
    fuzz_target(target, data, seconds=CALL_SECONDS)
