"""Fast paths against the array-API core, bit for bit."""
import numpy as np
import pytest
from hypothesis import given

from reflip._fast import group_sort as fast_group_sort
from reflip.groupsort import _group_sort_fwd
from reflip.testing.strategies import group_sort_cases

import array_api_compat.numpy as xp


@pytest.mark.parametrize("kind", ["general", "ties"])
def test_numpy_max_min_is_core_bit_for_bit(kind, dtype):
    """[GS-7] the k = 2 NumPy fast path keeps the stable tie order, signed zeros included."""

    @given(group_sort_cases(dtype, kind))
    def check(case):
        axis = case.params["axis"] % case.x.ndim
        if case.x.shape[axis] % 2:
            return
        fast = fast_group_sort(case.x, 2, axis, xp)
        core = _group_sort_fwd(case.x, 2, axis, xp)[0]
        assert fast is not None and fast.dtype == core.dtype
        np.testing.assert_array_equal(np.signbit(fast), np.signbit(core))
        np.testing.assert_array_equal(fast, core)

    check()


def test_no_fast_path_elsewhere():
    assert fast_group_sort(np.zeros((2, 6)), 3, 1, xp) is None
