"""The one validation layer (reflip/_validate.py) and the rule every primitive follows through
it: a wrong *type* raises ``TypeError``, a wrong *value* ``ValueError``, and the message names
the parameter (issue 14, issue 15 section 1).

The tables below pin the error type of each parameter of each primitive, including the cases
that used to disagree between modules (``bjorck(tol="a")`` vs ``spectral_normalize(tol="a")``,
``pinf_project(w, "a")`` vs ``radius="a"``), and the dtype policy: the numerical primitives take
float32 and float64 only, GroupSort and the layouts any real floating dtype.
"""
import math

import numpy as np
import pytest

from reflip import (
    bjorck,
    bjorck_bwd,
    bjorck_fwd,
    bjorck_jvp,
    linf_project,
    linf_project_bwd,
    linf_project_fwd,
    linf_project_jvp,
    norm_p_inf,
    op_norm_2,
    op_norm_inf,
    pinf_project,
    pinf_project_bwd,
    pinf_project_fwd,
    pinf_project_jvp,
    row_scale,
    row_scale_bwd,
    row_scale_fwd,
    row_scale_jvp,
    spectral_normalize,
    spectral_normalize_bwd,
    spectral_normalize_fwd,
    spectral_normalize_jvp,
)
from reflip._validate import (
    MAX_ITERATIONS,
    check_array,
    check_bool,
    check_choice,
    check_cotangent,
    check_int,
    check_real,
)
from reflip.norms import check_p, dual_exponent

W = np.array([[0.9, -0.3, 0.2], [0.1, 0.4, -1.5]])

# --------------------------------------------------------------------------- the checks themselves


def test_check_int_and_real_separate_types_from_values():
    assert check_int(np.int64(3), "k") == 3 and type(check_int(np.int64(3), "k")) is int
    for bad in (True, 2.0, "2", None):
        with pytest.raises(TypeError, match=r"^k must be an integer, got"):
            check_int(bad, "k")
    with pytest.raises(ValueError, match=r"^k must be <= 5, got 6"):
        check_int(6, "k", maximum=5)
    assert type(check_real(np.float32(0.5), "r")) is float
    for bad in (True, "0.5", None, 1j, np.ones(1)):
        with pytest.raises(TypeError, match=r"^r must be a real number"):
            check_real(bad, "r")
    for bad, words in ((math.nan, "finite"), (math.inf, "finite"), (0.0, "> 0.0")):
        with pytest.raises(ValueError, match=rf"^r must be .*{words}"):
            check_real(bad, "r", minimum=0.0, strict=True)
    assert check_real(None, "r", allow_none=True) is None


def test_check_choice_and_bool():
    assert check_choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"^mode must be one of \('a', 'b'\), got 'c'"):
        check_choice("c", "mode", ("a", "b"))
    for bad in (None, 1, ["a"]):
        with pytest.raises(TypeError, match=r"^mode must be one of"):
            check_choice(bad, "mode", ("a", "b"))
    assert check_bool(np.bool_(True), "flag") is True
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match=r"^flag must be True or False"):
            check_bool(bad, "flag")


def test_check_array_and_cotangent():
    xp = np  # NumPy 2 is an array-API namespace
    check_array(np.ones((2, 3)), xp, "w", min_ndim=2)
    with pytest.raises(ValueError, match=r"^w must have at least 2 dimension\(s\) \(rows\), got shape \(3,\)"):
        check_array(np.ones(3), xp, "w", min_ndim=2, what=" (rows)")
    with pytest.raises(ValueError, match=r"^w must not be empty, got shape \(2, 0\)"):
        check_array(np.ones((2, 0)), xp, "w", min_ndim=2)
    check_array(np.ones(3, np.float16), xp, "x", exact=True)
    with pytest.raises(TypeError, match=r"^x must have dtype float32 or float64, got float16"):
        check_array(np.ones(3, np.float16), xp, "x")
    with pytest.raises(ValueError,
                       match=r"^y_bar must have the shape \(2, 3\) of the primitive's output, got \(3, 2\)"):
        check_cotangent("y_bar", np.ones((3, 2)), (2, 3), xp)
    with pytest.raises(ValueError, match=r"^w_dot must have the shape \(2, 3\) of the primitive's input"):
        check_cotangent("w_dot", np.ones(3), (2, 3), xp)


# --------------------------------------------------------------------------- every parameter, its error type

# (call, exception, the start of the message: the parameter's name first)
PARAMETER_ERRORS = [
    # Björck
    (lambda: bjorck(W, order="1"), TypeError, "order must be an integer"),
    (lambda: bjorck(W, order=0), ValueError, "order must be >= 1"),
    (lambda: bjorck(W, beta="half"), TypeError, "beta must be a real number"),
    (lambda: bjorck(W, beta=0.7), ValueError, "beta must satisfy"),
    (lambda: bjorck(W, n_iter=2.0), TypeError, "n_iter must be an integer"),
    (lambda: bjorck(W, n_iter=-1), ValueError, "n_iter must be >= 0"),
    (lambda: bjorck(W, n_iter=MAX_ITERATIONS + 1), ValueError, "n_iter must be <= 10000"),
    (lambda: bjorck(W, tol="a"), TypeError, "tol must be a real number or None"),
    (lambda: bjorck(W, tol=0.0), ValueError, "tol must be > 0"),
    (lambda: bjorck(W, tol=math.nan), ValueError, "tol must be a finite number"),
    (lambda: bjorck(W, scaling=None), TypeError, "scaling must be one of"),
    (lambda: bjorck(W, scaling="l2"), ValueError, "scaling must be one of"),
    (lambda: bjorck(W, backward=0), TypeError, "backward must be one of"),
    (lambda: bjorck(W, backward="exact"), ValueError, "backward must be one of"),
    (lambda: bjorck(W, checkpoint="no"), TypeError, "checkpoint must be True or False"),
    (lambda: bjorck(W, on_nonconvergence=False), TypeError, "on_nonconvergence must be one of"),
    (lambda: bjorck(W, on_nonconvergence="quiet"), ValueError, "on_nonconvergence must be one of"),
    (lambda: bjorck(W, check_finite=0), TypeError, "check_finite must be True or False"),
    (lambda: bjorck(W, precision=32), TypeError, "precision must be one of"),
    (lambda: bjorck(W, precision="tf32"), ValueError, "precision must be one of"),
    (lambda: bjorck(W, return_info="yes"), TypeError, "return_info must be True or False"),
    (lambda: bjorck(W[0]), ValueError, r"w must have at least 2 dimension\(s\)"),
    # Spectral normalization: tol="a" is a TypeError as for Björck (it was a ValueError)
    (lambda: spectral_normalize(W, tol="a"), TypeError, "tol must be a real number or None"),
    (lambda: spectral_normalize(W, tol=-1.0), ValueError, "tol must be >= 0"),
    (lambda: spectral_normalize(W, n_iter=1.0), TypeError, "n_iter must be an integer"),
    (lambda: spectral_normalize(W, n_iter=0), ValueError, "n_iter must be >= 1"),
    (lambda: spectral_normalize(W, n_iter=10**30, tol=0), ValueError, "n_iter must be <= 10000"),
    (lambda: spectral_normalize(W, convention=1), TypeError, "convention must be one of"),
    (lambda: spectral_normalize(W, convention="torch"), ValueError, "convention must be one of"),
    (lambda: spectral_normalize(W, np.ones(2, np.int32)), TypeError, "u must have dtype float32 or float64"),
    (lambda: spectral_normalize(W, np.ones(3)), ValueError, r"u must have shape \(\.\.\., m\)"),
    # Projections: p="a" is a TypeError like radius="a" (it was a ValueError)
    (lambda: pinf_project(W, "a"), TypeError, "p must be a real number"),
    (lambda: pinf_project(W, "inf"), TypeError, "p must be a real number"),
    (lambda: pinf_project(W, 3), ValueError, r"p must be 1, 2 or inf"),
    (lambda: pinf_project(W, 2, radius="a"), TypeError, "radius must be a real number"),
    (lambda: pinf_project(W, 2, radius=0), ValueError, "radius must be a finite number > 0"),
    (lambda: row_scale(W, None), TypeError, "p must be a real number"),
    (lambda: row_scale(W, 0.5), ValueError, r"p must be 1, 2 or inf"),
    (lambda: row_scale(W, 1, radius=None), TypeError, "radius must be a real number"),
    (lambda: linf_project(W, radius=True), TypeError, "radius must be a real number"),
    (lambda: linf_project(W, radius=-1.0), ValueError, "radius must be a finite number > 0"),
    (lambda: linf_project(W, threshold=None), TypeError, "threshold must be one of"),
    (lambda: linf_project(W, threshold="paper"), ValueError, "threshold must be one of"),
    (lambda: linf_project(W.reshape(-1)[:0]), ValueError, "w must not be empty"),
    # Norms
    (lambda: norm_p_inf(W, "2"), TypeError, "p must be a real number"),
    (lambda: norm_p_inf(W, 0.5), ValueError, r"p must be a number in \[1, inf\]"),
    (lambda: op_norm_2(np.float64(1.0) * np.ones(())), ValueError, r"w must have at least 1 dimension\(s\)"),
    (lambda: check_p("inf"), TypeError, "p must be a real number"),
    (lambda: dual_exponent(3), ValueError, r"p must be 1, 2 or inf"),
]


@pytest.mark.parametrize("index", range(len(PARAMETER_ERRORS)))
def test_each_parameter_has_its_error_type(index):
    """Wrong type -> TypeError, wrong value -> ValueError, the parameter named first."""
    call, exc, words = PARAMETER_ERRORS[index]
    with pytest.raises(Exception) as info:
        call()
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    assert info.match("^" + words)


# --------------------------------------------------------------------------- the dtype policy


def _primal(name, w):
    """The plain call and the forward pass of each numerical primitive on ``w``."""
    return {
        "bjorck": (lambda: bjorck(w), lambda: bjorck_fwd(w)),
        "linf_project": (lambda: linf_project(w), lambda: linf_project_fwd(w)),
        "pinf_project": (lambda: pinf_project(w, 2), lambda: pinf_project_fwd(w, 2)),
        "row_scale": (lambda: row_scale(w, 1), lambda: row_scale_fwd(w, 1)),
        "spectral_normalize": (lambda: spectral_normalize(w), lambda: spectral_normalize_fwd(w)),
        "op_norm_2": (lambda: op_norm_2(w),),
        "op_norm_inf": (lambda: op_norm_inf(w),),
        "norm_p_inf": (lambda: norm_p_inf(w, 2),),
    }[name]


NUMERIC = ["bjorck", "linf_project", "pinf_project", "row_scale", "spectral_normalize", "op_norm_2",
           "op_norm_inf", "norm_p_inf"]
DERIVATIVES = {
    "bjorck": (bjorck_fwd, bjorck_bwd, bjorck_jvp),
    "linf_project": (linf_project_fwd, linf_project_bwd, linf_project_jvp),
    "pinf_project": (lambda w: pinf_project_fwd(w, math.inf), pinf_project_bwd, pinf_project_jvp),
    "row_scale": (lambda w: row_scale_fwd(w, 2), row_scale_bwd, row_scale_jvp),
    "spectral_normalize": (spectral_normalize_fwd, spectral_normalize_bwd, spectral_normalize_jvp),
}
REFUSED = [np.float16, np.longdouble, np.int32, np.bool_, np.complex128]


@pytest.mark.parametrize("dt", REFUSED, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NUMERIC)
def test_numerical_primitives_refuse_other_dtypes(name, dt):
    """Issue 14 item 1: float16 gave wrong projections (e.g. linf_project returned a row of l1
    norm 2 for radius 1); every numerical primitive now refuses every dtype but float32 and
    float64 with a TypeError naming ``w``, in the plain call and the forward pass."""
    w = W.astype(dt)
    for call in _primal(name, w):
        with pytest.raises(TypeError, match=rf"^w must have dtype float32 or float64, got {np.dtype(dt).name}"):
            call()


@pytest.mark.parametrize("dt", [np.float16, np.longdouble, np.int64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(DERIVATIVES))
def test_numerical_derivatives_refuse_other_cotangent_dtypes(name, dt):
    """The VJP refuses a float16 / longdouble ``y_bar`` and the JVP such a ``w_dot`` (the
    rounding bounds hold for float32 and float64 only), naming the argument; a float32 or
    float64 one of the right shape is accepted."""
    fwd, bwd, jvp = DERIVATIVES[name]
    y, res = fwd(W)
    for fn, arg in ((bwd, "y_bar"), (jvp, "w_dot")):
        with pytest.raises(TypeError, match=rf"^{arg} must have dtype float32 or float64"):
            fn(res, np.ones(W.shape, dt))
        assert fn(res, np.ones(W.shape, np.float32)).shape == W.shape


@pytest.mark.parametrize("name", sorted(DERIVATIVES))
def test_every_residual_type_knows_its_cotangent_shape(name):
    """One ``check_cotangent(name, a, residuals.shape, xp)`` for every primitive: the residual
    types carry the shape (the caller's orientation, also for a wide Björck input)."""
    fwd, bwd, jvp = DERIVATIVES[name]
    for w in (W, W.T.copy(), np.stack([W, 2 * W])):
        y, res = fwd(w)
        assert res.shape == w.shape == y.shape
        for fn, arg in ((bwd, "y_bar"), (jvp, "w_dot")):
            with pytest.raises(ValueError, match=rf"^{arg} must have the shape {re_shape(w.shape)}"):
                fn(res, np.ones((*w.shape, 1)))


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")
