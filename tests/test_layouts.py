"""MaxMin layouts of other code, checked against brute-force loop implementations of each
layout (written from its description, not from reflip's index formulas) [GS-9]."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reflip.groupsort import group_sort, max_min
from reflip.layouts import (
    MAX_MIN_LAYOUTS,
    group_size_from_num_groups,
    max_min_indices,
    max_min_layout,
    num_groups_from_group_size,
    to_reflip_layout,
)
from reflip.testing.strategies import bounded_floats


def brute_force(x, layout):
    """Loop implementation of each layout on a 1-D vector."""
    h = len(x) // 2
    if layout.startswith("half_split"):
        pairs = [(x[i], x[i + h]) for i in range(h)]
    else:
        pairs = [(x[2 * i], x[2 * i + 1]) for i in range(h)]
    mins, maxes = [min(p) for p in pairs], [max(p) for p in pairs]
    if layout == "contiguous_min_max":
        return [v for p in zip(mins, maxes, strict=True) for v in p]
    if layout == "contiguous_max_min":
        return [v for p in zip(maxes, mins, strict=True) for v in p]
    if layout in ("maxes_then_mins", "half_split_max_min"):
        return maxes + mins
    if layout == "half_split_min_max":
        return mins + maxes
    raise AssertionError(layout)


@pytest.mark.parametrize("layout", MAX_MIN_LAYOUTS)
@given(data=st.data())
def test_layout_matches_brute_force(layout, data):
    """[GS-9] foreign(x) = max_min(x[in_idx])[out_idx] for every layout, any axis."""
    half = data.draw(st.integers(1, 6))
    batch = data.draw(st.integers(1, 3))
    x = data.draw(hnp.arrays(np.float64, (batch, 2 * half), elements=bounded_floats(np.float64)))
    expected = np.array([brute_force(list(row), layout) for row in x])
    np.testing.assert_array_equal(max_min_layout(x, layout), expected)
    np.testing.assert_array_equal(max_min_layout(x.T.copy(), layout, axis=0), expected.T)
    in_idx, _ = max_min_indices(layout, 2 * half)
    np.testing.assert_array_equal(to_reflip_layout(expected, layout), max_min(x[:, in_idx]))
    assert sorted(in_idx) == list(range(2 * half))


def test_num_groups_conversion():
    """[GS-9] the paper code's num_units is the number of groups."""
    x = np.arange(12.0)[::-1]
    assert group_size_from_num_groups(12, 3) == 4
    assert num_groups_from_group_size(12, 4) == 3
    np.testing.assert_array_equal(group_sort(x, group_size_from_num_groups(12, 3)),
                                  np.sort(x.reshape(3, 4), -1).ravel())
    with pytest.raises(ValueError, match="num_groups=5 must divide the width n=12"):
        group_size_from_num_groups(12, 5)


def test_bad_layout_arguments():
    with pytest.raises(ValueError, match="layout must be one of"):
        max_min_indices("interleaved", 4)
    with pytest.raises(ValueError, match="even width"):
        max_min_indices("maxes_then_mins", 5)
    with pytest.raises(TypeError, match="x must have a real floating dtype"):
        max_min_layout(np.arange(4), "maxes_then_mins")


def test_layout_argument_types_and_shapes():
    """A layout that is not a string is a wrong type; empty and 0-d arrays are wrong values;
    ``to_reflip_layout`` checks its array like ``max_min_layout`` does."""
    for bad in (None, 3, ("maxes_then_mins",)):
        with pytest.raises(TypeError, match=r"^layout must be one of"):
            max_min_indices(bad, 4)
        with pytest.raises(TypeError, match=r"^layout must be one of"):
            max_min_layout(np.zeros(4), bad)
    for fn, name in ((max_min_layout, "x"), (to_reflip_layout, "y")):
        with pytest.raises(ValueError, match=rf"^{name} must not be empty"):
            fn(np.zeros((0, 4)), "maxes_then_mins")
        with pytest.raises(ValueError, match=rf"^{name} must have at least 1 dimension"):
            fn(np.float64(1.0) * np.ones(()), "maxes_then_mins")
    with pytest.raises(TypeError, match=r"^y must have a real floating dtype, got int64"):
        to_reflip_layout(np.arange(4), "maxes_then_mins")


@pytest.mark.parametrize("dt", [np.float16, np.longdouble], ids=["float16", "longdouble"])
@pytest.mark.parametrize("layout", MAX_MIN_LAYOUTS)
def test_layouts_in_every_real_floating_dtype(layout, dt):
    """[GS-9] the layouts only move entries: float16 and longdouble give the brute force's
    values exactly, in the input dtype (longdouble values that float64 cannot hold included)."""
    rng = np.random.default_rng(1)
    x = rng.integers(-8, 8, (3, 8)).astype(dt) * dt(0.5)
    if np.finfo(dt).nmant > np.finfo(np.float64).nmant:
        x = x + dt(2) ** -60
    expected = np.array([brute_force(list(row), layout) for row in x], dtype=dt)
    got = max_min_layout(x, layout)
    assert got.dtype == dt and np.array_equal(got, expected)
    in_idx, _ = max_min_indices(layout, 8)
    back = to_reflip_layout(expected, layout)
    assert back.dtype == dt and np.array_equal(back, max_min(x[:, in_idx]))
