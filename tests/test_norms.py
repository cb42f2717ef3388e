"""Operator-norm helpers: against NumPy's linear algebra and against the maximizers of the
duality [PR-7]."""
import math

import numpy as np
import pytest

import reflip
from reflip import norm_p_inf, op_norm_2, op_norm_inf
from reflip.norms import check_p, dual_exponent
from reflip.testing.backends import available_backends


def _w(seed=0, shape=(4, 6)):
    return np.random.default_rng(seed).standard_normal(shape)


def test_op_norm_2_is_the_largest_singular_value():
    w = _w(1, (2, 4, 6))
    np.testing.assert_allclose(op_norm_2(w), np.linalg.svd(w, compute_uv=False)[..., 0], rtol=1e-14)
    np.testing.assert_allclose(float(op_norm_2(w[0, 0])), np.linalg.norm(w[0, 0]), rtol=1e-14)  # a row


def test_op_norm_inf_is_the_largest_row_l1_norm():
    """[PR-1] ||W||_inf = max_i ||w_i||_1, the operator norm l_inf -> l_inf (x = sign(w_i)
    attains it)."""
    w = _w(2, (3, 5, 7))
    np.testing.assert_allclose(op_norm_inf(w), [np.linalg.norm(m, ord=np.inf) for m in w], rtol=1e-15)
    i = int(np.argmax(np.abs(w[0]).sum(-1)))
    np.testing.assert_allclose(np.max(np.abs(w[0] @ np.sign(w[0, i]))), float(op_norm_inf(w[0])), rtol=1e-14)


@pytest.mark.parametrize("p", [1, 1.5, 2, 3, math.inf])
def test_norm_p_inf_duality(p):
    """[PR-7] ||W||_{p,inf} = max_x ||W x||_inf / ||x||_p = max_i ||w_i||_q: random directions
    never exceed it, and the Hölder maximizer of the largest row attains it."""
    w = _w(3)
    value = float(norm_p_inf(w, p))
    q = 1.0 if p == math.inf else (math.inf if p == 1 else p / (p - 1))
    np.testing.assert_allclose(value, np.max(np.linalg.norm(w, ord=q, axis=-1)), rtol=1e-14)
    xs = np.random.default_rng(4).standard_normal((1000, w.shape[1]))
    ratios = np.max(np.abs(xs @ w.T), axis=1) / np.linalg.norm(xs, ord=p, axis=1)
    assert ratios.max() <= value * (1 + 1e-12)
    i = int(np.argmax(np.linalg.norm(w, ord=q, axis=-1)))
    row = w[i]
    if p == 1:
        x = np.zeros_like(row)
        x[np.argmax(np.abs(row))] = np.sign(row[np.argmax(np.abs(row))])
    elif p == math.inf:
        x = np.sign(row)
    else:
        x = np.sign(row) * np.abs(row) ** (q - 1)
    attained = np.max(np.abs(w @ x)) / np.linalg.norm(x, ord=p)
    np.testing.assert_allclose(attained, value, rtol=1e-12)


def test_norm_p_inf_special_cases():
    """[PR-7] p = inf is op_norm_inf; p = 1 is the largest |w_ij|."""
    w = _w(5)
    np.testing.assert_allclose(float(norm_p_inf(w, math.inf)), float(op_norm_inf(w)), rtol=1e-15)
    assert float(norm_p_inf(w, 1)) == float(np.max(np.abs(w)))


@pytest.mark.parametrize("p", [0.5, 0, -1, math.nan, -math.inf])
def test_bad_p_value(p):
    with pytest.raises(ValueError, match=r"p must be a number in \[1, inf\]"):
        norm_p_inf(np.ones((2, 2)), p)


@pytest.mark.parametrize("p", [True, "2", "inf", None, np.ones(1)])
def test_bad_p_type(p):
    """A p that is not a number is a wrong type (issue 15), as for the projections."""
    with pytest.raises(TypeError, match=r"p must be a real number, got"):
        norm_p_inf(np.ones((2, 2)), p)


@pytest.mark.parametrize("fn", [op_norm_2, op_norm_inf, lambda w: norm_p_inf(w, 2)])
def test_bad_input(fn):
    with pytest.raises(TypeError, match="w must have dtype float32 or float64"):
        fn(np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"w must have at least 1 dimension\(s\) \(rows along the last axis\)"):
        fn(np.ones(()))
    with pytest.raises(ValueError, match="w must not be empty"):
        fn(np.ones((0, 2)))
    with pytest.raises(TypeError, match="w must be an array"):
        fn([[1.0]])


def test_array_api_strict():
    (strict,) = available_backends(("array_api_strict-nodds",))
    w = _w(6, (2, 3, 4))
    with strict.active():
        ws = strict.asarray(w)
        got = [reflip.to_numpy(f(ws)) for f in (op_norm_2, op_norm_inf, lambda a: norm_p_inf(a, 2))]
    want = [op_norm_2(w), op_norm_inf(w), norm_p_inf(w, 2)]
    for g, e in zip(got, want, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-14)


@pytest.mark.parametrize("p, q", [(1, math.inf), (2, 2.0), (math.inf, 1.0), (np.int64(1), math.inf),
                                  (np.float32(2), 2.0), (np.inf, 1.0), (float("inf"), 1.0),
                                  (np.float32(np.inf), 1.0), (1.0, math.inf)])
def test_dual_exponent(p, q):
    """[PR-7] q with 1/p + 1/q = 1, one return type (float) whatever the type of p: checked
    against the defining relation, not a table."""
    got = dual_exponent(p)
    assert type(got) is float and got == q
    assert 1 / float(p) + 1 / got == 1
    assert type(check_p(p)) is float and check_p(p) == float(p)


@pytest.mark.parametrize("p", ["inf", "2", None, True, np.ones(1), 1j])
def test_check_p_refuses_non_numbers_with_type_error(p):
    for fn in (check_p, dual_exponent):
        with pytest.raises(TypeError, match=r"^q must be a real number, got"):
            fn(p, name="q")


@pytest.mark.parametrize("p", [0, 3, 1.5, -1, -math.inf, math.nan, 0.5])
def test_check_p_refuses_other_numbers_with_value_error(p):
    for fn in (check_p, dual_exponent):
        with pytest.raises(ValueError, match=r"^ord must be 1, 2 or inf \(math.inf\), got"):
            fn(p, name="ord")
