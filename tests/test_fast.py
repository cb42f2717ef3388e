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


def test_fast_jvp_and_precision_switch_are_cupy_only():
    """NumPy has no JVP fast path (the core's gather is NumPy's own) and no TF32 switch: asking
    for it is an error, not a silent no-op."""
    x = np.zeros((2, 4))
    assert _fast.group_sort_jvp(None, x, 2, 1, xp) is None
    with _fast.matmul_precision(xp, x.dtype, "default"):
        pass
    with pytest.raises(ValueError, match="precision='tf32' needs CuPy"):
        _fast.matmul_precision(xp, x.dtype, "tf32")


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_tf32_mixed_precision_is_refused_on_numpy(dtype_name):
    """[BJ-5] precision="tf32-mixed" names the parameter and what it needs instead of running
    a float32 iteration under a TF32 label; unknown precisions are refused too."""
    import reflip

    w = np.eye(3, dtype=dtype_name)
    with pytest.raises(ValueError, match="precision='tf32-mixed' needs a float32 CuPy array"):
        reflip.bjorck(w, precision="tf32-mixed")
    with pytest.raises(ValueError, match="precision must be one of"):
        reflip.bjorck_fwd(w, precision="tf32")


# The primitives of the foundation, Björck and projections issues; primitives registered later
# name their bench inputs in their own records (benchmarks/run.py lists those without any).
_BENCHED = ("group_sort", "bjorck", "linf_project", "pinf_project", "row_scale", "spectral_normalize")


def test_registry_primitives_have_bench_inputs():
    """benchmarks/run.py times every registry primitive: each record names inputs, and the
    small ones run through fwd and bwd with an output of the right shape."""
    from reflip._registry import REGISTRY

    for name in _BENCHED:
        factory = REGISTRY[name].bench_factory()
        assert factory is not None, name
        rec = REGISTRY[name]
        cases = factory(np, "float32", "small")
        assert cases, name
        for label, x, params in cases:
            assert x.dtype == np.float32, (name, label)
            y, res = rec.fwd(x, **params)
            assert rec.bwd(res, np.ones_like(y)).shape == x.shape, (name, label)
    with pytest.raises(ValueError, match="size must be"):
        REGISTRY["group_sort"].bench_factory()(np, "float32", "tiny")


@pytest.mark.meta
def test_bit_for_bit_check_catches_swapped_min_arguments(monkeypatch):
    """Meta: the k = 2 path with NumPy's minimum/maximum arguments in the other order (which
    returns the second zero at a tie of signed zeros, against the stable order [GS-7]) is
    caught by the bit comparison used above."""
    def swapped(x, axis):
        x = np.moveaxis(x, axis, -1)
        out = np.empty(x.shape, dtype=x.dtype)
        np.minimum(x[..., 0::2], x[..., 1::2], out=out[..., 0::2])
        np.maximum(x[..., 1::2], x[..., 0::2], out=out[..., 1::2])
        return np.moveaxis(out, -1, axis)

    x = np.array([[0.0, -0.0, -0.0, 0.0]])
    y_core, _ = _group_sort_fwd_core(x, 2, 1, xp)
    _same_bits(_fast.group_sort(x, 2, 1, xp), y_core)
    monkeypatch.setattr(_fast, "_numpy_max_min", swapped)
    with pytest.raises(AssertionError):
        _same_bits(_fast.group_sort(x, 2, 1, xp), y_core)
