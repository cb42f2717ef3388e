"""Tests that kill the mutants mutmut found surviving a module's own tests (docs/mutation.md
lists each survivor and the test here that kills it, or why it is equivalent).

Most survivors were argument checks whose bound or parameter name could change without any
test noticing, and device placement that only a second device shows.
"""
import array_api_strict
import numpy as np
import pytest

from reflip.layouts import (
    MAX_MIN_LAYOUTS,
    group_size_from_num_groups,
    max_min_indices,
    max_min_layout,
    num_groups_from_group_size,
    to_reflip_layout,
)

# ---- layouts ---------------------------------------------------------------------------------


def test_max_min_indices_width_bounds_and_name():
    """``n`` is an even integer >= 2: 0 is refused by the lower bound (not accepted as an empty
    layout), and the messages name ``n``."""
    with pytest.raises(ValueError, match=r"^n must be >= 2, got 0$"):
        max_min_indices("contiguous_min_max", 0)
    with pytest.raises(TypeError, match=r"^n must be an integer"):
        max_min_indices("contiguous_min_max", 4.0)
    assert max_min_indices("maxes_then_mins", 2) == ([0, 1], [1, 0])


def test_group_size_from_num_groups_bounds_and_names():
    """Both arguments are integers >= 1 (1 is allowed, 0 refused with ``ValueError``, never a
    ``ZeroDivisionError``), and each message names its parameter."""
    assert group_size_from_num_groups(1, 1) == 1
    assert group_size_from_num_groups(4, 1) == 4
    assert num_groups_from_group_size(6, 3) == 2
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0$"):
        group_size_from_num_groups(0, 1)
    with pytest.raises(ValueError, match=r"^num_groups must be >= 1, got 0$"):
        group_size_from_num_groups(4, 0)
    with pytest.raises(TypeError, match=r"^n must be an integer"):
        group_size_from_num_groups("4", 2)
    with pytest.raises(TypeError, match=r"^num_groups must be an integer"):
        group_size_from_num_groups(4, 2.0)


@pytest.mark.parametrize("fn", [max_min_layout, to_reflip_layout])
def test_layout_messages_describe_the_feature_axis(fn):
    with pytest.raises(ValueError, match=r"at least 1 dimension\(s\) \(the feature axis\)"):
        fn(np.float64(1.0), "contiguous_min_max")


@pytest.mark.parametrize("layout", MAX_MIN_LAYOUTS)
def test_layouts_stay_on_the_input_device(layout):
    """The gather indices are made on the input's device: on a second array_api_strict device
    the result is there too (indices on the default device would raise)."""
    dev = array_api_strict.Device("device1")
    x = array_api_strict.asarray([[3.0, 1.0, -2.0, 5.0], [0.5, 0.25, 4.0, -1.0]], device=dev)
    want = max_min_layout(np.asarray([[3.0, 1.0, -2.0, 5.0], [0.5, 0.25, 4.0, -1.0]]), layout)
    y = max_min_layout(x, layout)
    assert y.device == dev
    np.testing.assert_array_equal(np.asarray(array_api_strict.asarray(y, device=array_api_strict.Device("CPU_DEVICE"))),
                                  want)
    z = to_reflip_layout(y, layout)
    assert z.device == dev
