"""Fast paths against the array-API core, bit for bit [GS-7]."""
import array_api_compat.numpy as xp
import numpy as np
import pytest
from hypothesis import given

from reflip import _fast
from reflip.groupsort import _group_sort_bwd_core, _group_sort_fwd_core
from reflip.testing.strategies import group_sort_cases


def _same_bits(a, b):
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


@pytest.mark.parametrize("kind", ["general", "ties", "differentiable"])
def test_numpy_fast_paths_are_core_bit_for_bit(kind, dtype):
    """[GS-7] the NumPy fast paths (min/max for k = 2, SIMD sort with a stable fallback at
    ties) give the core's stable result exactly, signed zeros included, and the same
    permutation."""

    @given(group_sort_cases(dtype, kind))
    def check(case):
        k, axis = case.params["group_size"], case.params["axis"] % case.x.ndim
        y_core, res_core = _group_sort_fwd_core(case.x, k, axis, xp)
        y_fast, perm_fast = _fast.group_sort_fwd(case.x, k, axis, xp)
        _same_bits(y_fast, y_core)
        np.testing.assert_array_equal(perm_fast, res_core.perm)
        _same_bits(_fast.group_sort(case.x, k, axis, xp), y_core)
        y_bar = np.random.default_rng(case.x.size).standard_normal(case.x.shape).astype(case.x.dtype)
        _same_bits(_fast.group_sort_bwd(perm_fast, y_bar, k, axis, xp),
                   _group_sort_bwd_core(res_core, y_bar, xp))

    check()


def test_fallback_on_ties_and_nan():
    """Groups with ties or NaN take the stable fallback: the permutation is the stable one."""
    x = np.array([[0.0, -0.0, 1.0, 1.0], [3.0, np.nan, 1.0, 2.0]])
    _, perm = _fast.group_sort_fwd(x, 4, 1, xp)
    np.testing.assert_array_equal(perm, np.argsort(x, axis=-1, kind="stable")[:, None, :])
    _same_bits(_fast.group_sort(x, 4, 1, xp), np.sort(x, axis=-1, kind="stable"))


def test_no_fast_path_for_other_namespaces():
    import array_api_strict

    x = array_api_strict.asarray(np.zeros((2, 6)))
    assert _fast.group_sort(x, 3, 1, array_api_strict) is None
    assert _fast.group_sort_fwd(x, 3, 1, array_api_strict) is None
    assert _fast.group_sort_bwd(None, x, 3, 1, array_api_strict) is None
