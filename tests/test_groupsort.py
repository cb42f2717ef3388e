"""GroupSort tests outside the claim suite (tests/audit/test_claims.py runs the claims): bad input,
NaN/inf, the named conveniences, and an independent autograd formulation as oracle."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from hypothesis import given
from hypothesis import strategies as st

import reflip
from reflip import full_sort, group_sort, group_sort_bwd, group_sort_fwd, group_sort_jvp, max_min
from reflip.testing.strategies import group_sort_cases


@pytest.mark.parametrize(
    "x, kwargs, exc, words",
    [
        (np.zeros((2, 6)), {"group_size": 4}, ValueError, "group_size=4 must divide the length 6"),
        (np.zeros((2, 6)), {"group_size": 0}, ValueError, "group_size must be >= 1"),
        (np.zeros((2, 6)), {"group_size": -2}, ValueError, "group_size must be >= 1"),
        (np.zeros((2, 6)), {"group_size": 2.0}, TypeError, "group_size must be an integer"),
        (np.zeros((2, 6)), {"group_size": True}, TypeError, "group_size must be an integer"),
        (np.zeros((2, 6), dtype=np.int64), {}, TypeError, "x must have a real floating dtype"),
        (np.zeros((2, 6), dtype=np.complex128), {}, TypeError, "x must have a real floating dtype"),
        (np.float64(1.0) * np.ones(()), {}, ValueError, r"at least 1 dimension\(s\) \(the feature axis\)"),
        (np.zeros((2, 6)), {"axis": 2}, ValueError, "axis=2 is out of range"),
        (np.zeros((2, 6)), {"axis": -3}, ValueError, "axis=-3 is out of range"),
        (np.zeros((0, 6)), {}, ValueError, "x must not be empty"),
        (np.zeros((2, 0)), {}, ValueError, "x must not be empty"),
    ],
)
@pytest.mark.parametrize("op", [group_sort, group_sort_fwd])
def test_bad_input(op, x, kwargs, exc, words):
    """[GS-1] invalid arguments raise errors naming the parameter and what was expected."""
    with pytest.raises(exc, match=words):
        op(x, **kwargs)


def test_not_an_array():
    with pytest.raises(TypeError, match="x must be an array"):
        group_sort([1.0, 2.0])


def test_cotangent_shape_checked():
    _, res = group_sort_fwd(np.zeros((2, 6)), 3)
    with pytest.raises(ValueError, match=r"y_bar must have the shape \(2, 6\) of the primitive's output, got \(2, 3\)"):
        group_sort_bwd(res, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"x_dot must have the shape \(2, 6\) of the primitive's input, got \(6, 2\)"):
        group_sort_jvp(res, np.zeros((6, 2)))
    with pytest.raises(TypeError, match="y_bar must have a real floating dtype"):
        group_sort_bwd(res, np.zeros((2, 6), dtype=np.int32))


def test_read_only_inputs_accepted():
    """Inputs are never written: read-only arrays go through every function."""
    x = np.arange(12.0)[::-1].reshape(2, 6)
    x.flags.writeable = False
    y, res = group_sort_fwd(x, 3)
    g = np.ones_like(x)
    g.flags.writeable = False
    for out in (group_sort(x, 3), group_sort(x, 2), group_sort_bwd(res, g), group_sort_jvp(res, g)):
        assert out.shape == x.shape
    np.testing.assert_array_equal(x, np.arange(12.0)[::-1].reshape(2, 6))


@pytest.mark.parametrize("k", [2, 3, 6])
def test_nan_and_inf(k):
    """[GS-8] inf sorts as an ordinary value; a group with NaN outputs a permutation of
    itself holding the NaN (k = 2 fast path: NaN in both entries), other groups are unaffected,
    and the VJP stays a permutation of the cotangent."""
    x = np.array([[np.inf, -np.inf, 3.0, 1.0, np.nan, 0.5]])
    y, res = group_sort_fwd(x, k)
    groups = lambda a: a.reshape(-1, k)  # noqa: E731
    for gx, gy in zip(groups(x), groups(y), strict=True):
        if np.isnan(gx).any():
            assert np.isnan(gy).any()
            np.testing.assert_array_equal(np.sort(gx), np.sort(gy))
        else:
            np.testing.assert_array_equal(gy, np.sort(gx))
    g = np.arange(1.0, 7.0)[None]
    x_bar = group_sort_bwd(res, g)
    np.testing.assert_array_equal(np.sort(groups(x_bar), -1), np.sort(groups(g), -1))
    y_plain = group_sort(x, k)
    for gx, gy in zip(groups(x), groups(y_plain), strict=True):
        if np.isnan(gx).any():
            assert np.isnan(gy).any()
        else:
            np.testing.assert_array_equal(gy, np.sort(gx))


def test_conveniences():
    """[GS-6] max_min is group size 2 and full_sort one group spanning the axis."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8, 4))
    np.testing.assert_array_equal(max_min(x, axis=1), group_sort(x, 2, axis=1))
    np.testing.assert_array_equal(full_sort(x, axis=1), np.sort(x, axis=1))
    np.testing.assert_array_equal(max_min(x), np.sort(x.reshape(3, 8, 2, 2), -1).reshape(x.shape))
    with pytest.raises(ValueError, match=r"at least 1 dimension\(s\)"):
        full_sort(np.ones(()))


def _independent_group_sort(x, k, axis):
    """GroupSort written differently, by ranks: in a tie-free group, entry i goes to output
    position rank_i = #{l : x_l < x_i}; y = sum_i x_i onehot(rank_i). autograd traces the
    products with the (locally constant) one-hot masks: no sort, no gather."""
    x = anp.moveaxis(x, axis, -1)
    xg = anp.reshape(x, x.shape[:-1] + (x.shape[-1] // k, k))
    values = getattr(xg, "_value", xg)
    rank = np.sum(values[..., None, :] < values[..., :, None], axis=-1)  # (..., k) per entry
    onehot = (rank[..., :, None] == np.arange(k)).astype(float)  # (..., entry, position)
    y = anp.sum(xg[..., :, None] * onehot, axis=-2)
    return anp.moveaxis(anp.reshape(y, x.shape), -1, axis)


@given(group_sort_cases("float64", "differentiable"))
def test_vjp_matches_autograd_of_independent_formulation(case):
    """[GS-4] on tie-free inputs the hand-written VJP equals autograd differentiating a
    rank-based formulation that shares no code with reflip's."""
    x, (k, axis) = case.x, (case.params["group_size"], case.params["axis"])
    w = np.random.default_rng(x.size).standard_normal(x.shape)
    expected = grad(lambda z: anp.sum(_independent_group_sort(z, k, axis) * w))(x)
    y, res = group_sort_fwd(x, k, axis=axis)
    np.testing.assert_array_equal(y, _independent_group_sort(x, k, axis))
    np.testing.assert_array_equal(group_sort_bwd(res, w), expected)


def test_registry_record():
    rec = reflip.REGISTRY["group_sort"]
    assert (rec.fun, rec.fwd, rec.bwd, rec.jvp) == (group_sort, group_sort_fwd, group_sort_bwd, group_sort_jvp)
    assert rec.proof == "GS-1" and rec.second_order


@given(st.integers(1, 6), st.integers(1, 5))
def test_group_size_one_is_identity(n, batch):
    """[GS-1] group size 1: every group is a single entry, so GroupSort is the identity."""
    x = np.random.default_rng(n * batch).standard_normal((batch, n))
    y, res = group_sort_fwd(x, 1)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(group_sort_bwd(res, x), x)


# ----------------------------------------------------------------------------------------------
# Every real floating dtype [GS-1]: GroupSort moves entries, so float16 and longdouble are exact


def _brute_force(x, k, axis):
    """Per group, the stable order by Python's ``sorted`` on the scalars themselves (exact in
    any dtype): ``(y, perm)`` with ``y_g = x_g[perm_g]``."""
    moved = np.moveaxis(x, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    perm = np.empty(rows.shape, dtype=np.int64)
    for r, row in enumerate(rows):
        for g in range(0, len(row), k):
            order = sorted(range(k), key=lambda i: (row[g + i], i))
            perm[r, g:g + k] = [g + i for i in order]
    y = np.take_along_axis(rows, perm, axis=-1)
    shape = moved.shape
    return np.moveaxis(y.reshape(shape), -1, axis), np.moveaxis(perm.reshape(shape), -1, axis)


def _exotic(dt, shape, seed):
    """Tie-heavy values of ``dt``; in longdouble also values float64 cannot hold (1 + 2^-60), so
    a detour through float64 would show."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, shape).astype(dt) * dt(0.5)
    if np.finfo(dt).nmant > np.finfo(np.float64).nmant:
        x = x + rng.integers(0, 3, shape).astype(dt) * (dt(2) ** -60)
    return x


@pytest.mark.parametrize("dt", [np.float16, np.longdouble], ids=["float16", "longdouble"])
@pytest.mark.parametrize("shape, k, axis", [((3, 12), 2, -1), ((3, 12), 3, -1), ((4, 6, 2), 6, 1),
                                            ((2, 8), 8, -1), ((8, 3), 4, 0)])
def test_exotic_dtypes_equal_a_brute_force_sort(dt, shape, k, axis):
    """[GS-1] [GS-4] [GS-7] float16 and longdouble: the plain call, MaxMin/FullSort and the
    forward pass equal a per-group stable sort exactly (and in float64 for float16, which it
    represents exactly); the VJP and JVP are the permutation of that sort, in the input dtype."""
    x = _exotic(dt, shape, seed=k)
    y_ref, perm = _brute_force(x, k, axis)
    if dt is np.float16:
        y64, _ = _brute_force(x.astype(np.float64), k, axis)
        np.testing.assert_array_equal(y_ref.astype(np.float64), y64)
    y, res = group_sort_fwd(x, k, axis=axis)
    for out in (y, group_sort(x, k, axis=axis)):
        assert out.dtype == dt and np.array_equal(out, y_ref)
    if k == 2:
        np.testing.assert_array_equal(max_min(x, axis=axis), y_ref)
    if k == shape[axis]:
        np.testing.assert_array_equal(full_sort(x, axis=axis), y_ref)
    # Cotangents of the same dtype with distinct entries: y_dot = x_dot[perm] and
    # x_bar[perm] = y_bar, group by group.
    t = np.arange(np.prod(shape)).reshape(shape).astype(dt) + dt(0.25)
    y_dot = group_sort_jvp(res, t)
    x_bar = group_sort_bwd(res, t)
    assert y_dot.dtype == dt and x_bar.dtype == dt
    np.testing.assert_array_equal(y_dot, np.take_along_axis(t, perm, axis=axis))
    expected = np.empty_like(t)
    np.put_along_axis(expected, perm, t, axis=axis)
    np.testing.assert_array_equal(x_bar, expected)


@pytest.mark.parametrize("dt", [np.float16, np.longdouble], ids=["float16", "longdouble"])
def test_exotic_dtypes_still_check_the_cotangent(dt):
    """[GS-1] a cotangent of any real floating dtype is accepted, an integer one is refused
    with a TypeError naming it."""
    _, res = group_sort_fwd(_exotic(dt, (2, 6), 0), 3)
    for fn, arg in ((group_sort_bwd, "y_bar"), (group_sort_jvp, "x_dot")):
        with pytest.raises(TypeError, match=rf"^{arg} must have a real floating dtype, got int32"):
            fn(res, np.zeros((2, 6), np.int32))
        assert fn(res, np.ones((2, 6), np.float64)).dtype == np.float64
