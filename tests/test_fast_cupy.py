"""CuPy fast paths against the array-API core running on CuPy, bit for bit [GS-7, GS-8], and the
mixed-precision Björck mode against pure float32 [BJ-5]. Skipped without CuPy and a GPU.

The GroupSort kernels (reflip/_fast/cupy_groupsort.py) must give the core's stable result
exactly: the same output bits (signed zeros and NaN payloads included), the same permutation,
and the same VJP/JVP, on tie- and NaN-heavy inputs, every group-size regime (register network
k <= 32, shared memory above), both dtypes, every axis and non-contiguous layouts.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

cupy = pytest.importorskip("cupy")
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("cupy sees no GPU", allow_module_level=True)
except cupy.cuda.runtime.CUDARuntimeError:
    pytest.skip("cupy sees no GPU", allow_module_level=True)

import array_api_compat.cupy as xp  # noqa: E402

import reflip  # noqa: E402
from reflip._fast import cupy_groupsort  # noqa: E402
from reflip.groupsort import (  # noqa: E402
    GroupSortResiduals,
    _group_sort_bwd_core,
    _group_sort_fwd_core,
    _grouped,
    _ungrouped,
)
from reflip.testing.strategies import group_sort_cases  # noqa: E402

# Entries with every way two floats can compare equal or not at all: repeated values, both
# zeros, both infinities, NaNs of both signs and two payloads (bits kept through the sort).
_NAN_A = np.array(0x7FC00001, dtype=np.uint32).view(np.float32).item()
_NAN_B = np.array(0xFFC00002, dtype=np.uint32).view(np.float32).item()
_POOL = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, np.inf, -np.inf, np.nan, _NAN_A, _NAN_B, 1e-30, -3e38]
_K_VALUES = [1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 32, 33, 64, 100, 256, 257, 600]


def _bits(a):
    a = cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.asarray(a)
    return np.ascontiguousarray(a).view(np.uint8)


def _same_bits(a, b):
    np.testing.assert_array_equal(_bits(a), _bits(b))


@st.composite
def _hard_cases(draw, dtype):
    """``(x, k, axis, layout)`` with tie/NaN/zero-heavy entries and any group-size regime."""
    k = draw(st.sampled_from(_K_VALUES))
    n_groups = draw(st.integers(1, 3)) if k <= 64 else 1
    batch = draw(st.lists(st.integers(1, 3), max_size=2))
    axis = draw(st.integers(0, len(batch)))
    shape = (*batch[:axis], k * n_groups, *batch[axis:])
    pool = draw(st.sets(st.sampled_from(_POOL), min_size=1))
    x = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from(sorted(pool, key=repr))))
    x = x.astype(dtype)
    layout = draw(st.sampled_from(["c", "transposed", "strided"]))
    return x, k, axis, layout


def _on_device(x, axis, layout):
    """Put ``x`` on the GPU in ``layout``; returns the array and the axis to sort."""
    if layout == "transposed" and x.ndim == 2:
        return cupy.asarray(np.ascontiguousarray(x.T)).T, axis
    if layout == "strided":
        big = cupy.asarray(np.stack([x, x], axis=-1))
        return big[..., 1], axis
    return cupy.asarray(x), axis


def check_against_core(x, k, axis, impl=cupy_groupsort):
    """The kernels ``impl`` against the core on CuPy: output bits, permutation, VJP, JVP."""
    y_core, res_core = _group_sort_fwd_core(x, k, axis, xp)
    y_fast, perm = impl.group_sort_fwd(x, k, axis)
    _same_bits(y_fast, y_core)
    np.testing.assert_array_equal(cupy.asnumpy(perm), cupy.asnumpy(res_core.perm))
    _same_bits(impl.group_sort(x, k, axis), y_core)
    rng = np.random.default_rng(x.size)
    g = cupy.asarray(rng.standard_normal(x.shape).astype(x.dtype))
    _same_bits(impl.group_sort_bwd(perm, g, k, axis), _group_sort_bwd_core(res_core, g, xp))
    _same_bits(impl.group_sort_jvp(perm, g, k, axis), _core_jvp(res_core, g))


def _core_jvp(res, g):
    """The core's JVP ``P x_dot`` (a gather by the core's permutation), without the fast-path
    hook of ``_group_sort_jvp``, which would call the kernel under test."""
    perm, k, axis = res
    return _ungrouped(xp.take_along_axis(_grouped(g, k, axis, xp), perm, axis=-1), axis, xp)


@pytest.mark.parametrize("kind", ["general", "ties", "differentiable"])
def test_kernels_match_core_on_suite_cases(kind, dtype):
    """[GS-7] on the suite's own GroupSort cases (every axis, k in 1..8 and FullSort)."""

    @given(group_sort_cases(dtype, kind))
    def check(case):
        k, axis = case.params["group_size"], case.params["axis"] % case.x.ndim
        check_against_core(cupy.asarray(case.x), k, axis)

    check()


def test_kernels_match_core_on_ties_nan_zeros_and_layouts(dtype):
    """[GS-7, GS-8] ties, +-0, +-inf and NaNs (payloads kept) in every regime (k <= 32 in
    registers, k > 32 in shared memory), C, transposed and strided inputs."""

    @given(_hard_cases(dtype))
    def check(case):
        x, k, axis, layout = case
        xd, axis = _on_device(x, axis, layout)
        check_against_core(xd, k, axis)

    check()


@pytest.mark.parametrize("k", [2, 3, 4, 8, 16, 32, 64, 3072])
def test_public_functions_dispatch_to_kernels(k):
    """The public functions return the kernels' result (compact permutation) and round-trip
    through the core-layout residuals."""
    x = cupy.asarray(np.random.default_rng(k).standard_normal((6, 3072)).astype(np.float32))
    y, res = reflip.group_sort_fwd(x, k)
    assert res.perm.dtype == (np.uint8 if k <= 256 else np.uint16)
    _same_bits(y, _group_sort_fwd_core(x, k, 1, xp)[0])
    _same_bits(reflip.group_sort(x, k), y)
    g = cupy.ones_like(x)
    assert bool(cupy.all(reflip.group_sort_bwd(res, g) == 1))
    _same_bits(reflip.group_sort_bwd(GroupSortResiduals(res.perm.astype(np.int64), k, 1), x),
               reflip.group_sort_bwd(res, x))


@pytest.mark.meta
def test_check_catches_an_unstable_kernel():
    """Meta: a kernel whose comparison ignores the position (unstable at ties) and one that
    drops the zero sign are caught by check_against_core."""

    class Mutant:
        def __init__(self, old, new):
            self.source = cupy_groupsort._SOURCE.replace(old, new)
            assert self.source != cupy_groupsort._SOURCE

        def __getattr__(self, name):
            fn = getattr(cupy_groupsort, name)

            def run(*args):
                saved = cupy_groupsort._sort_module
                cupy_groupsort._sort_module = lambda: cupy.RawModule(
                    code=self.source, options=("--std=c++14",),
                    name_expressions=cupy_groupsort._SORT_NAMES)
                try:
                    return fn(*args)
                finally:
                    cupy_groupsort._sort_module = saved
            return run

    x = cupy.asarray(np.array([[1.0, 1.0, 0.0, -0.0, 2.0, -1.0, 1.0, 0.0]], dtype=np.float32))
    unstable = Mutant("bool item_less(u64 a, u64 b) { return a < b; }",
                      "bool item_less(u64 a, u64 b) { return (a >> 32) < (b >> 32) || "
                      "((a >> 32) == (b >> 32) && a > b); }")
    no_sign = Mutant("key = 0x80000000u; extra = b >> 31;", "key = 0x80000000u; extra = 0u;")
    for mutant in (unstable, no_sign):
        with pytest.raises(AssertionError):
            check_against_core(x, 8, 1, impl=mutant)
    check_against_core(x, 8, 1)


# ----------------------------------------------------------------------------------------------
# Björck mixed precision [BJ-5]


def _well_conditioned(n, seed=0, lo=0.25):
    rng = np.random.default_rng(seed)
    q1, _ = np.linalg.qr(rng.standard_normal((n, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = np.linspace(lo, 1.0, n)
    return cupy.asarray(((q1 * s) @ q2.T).astype(np.float32))


def test_tf32_switch_changes_products_and_is_restored():
    """The TF32 block really changes float32 products (else the mode would be a silent no-op)
    and restores the previous compute type."""
    from reflip._fast.cupy_bjorck import compute_type_module, tf32_matmul

    _linalg = compute_type_module()

    a = cupy.asarray(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32))
    before = _linalg.get_compute_type(np.float32)
    exact = a @ a
    with tf32_matmul(np.float32):
        fast = a @ a
    assert _linalg.get_compute_type(np.float32) == before
    assert not bool(cupy.all(fast == exact))
    assert bool(cupy.all(a @ a == exact))
    assert float(cupy.max(cupy.abs(fast - exact))) < 1e-1 * float(cupy.max(cupy.abs(exact)))


@pytest.mark.parametrize("n_iter", [18, 25])
def test_mixed_mode_reaches_the_float32_residual(n_iter):
    """[BJ-5] tf32-mixed reaches the residual of pure float32 (within 2x) on a well-conditioned
    matrix, and the TF32 phase alone (polishing removed) does not: the polish is what does it."""
    w = _well_conditioned(192)
    _, info32 = reflip.bjorck(w, n_iter=n_iter, return_info=True)
    _, info_mixed = reflip.bjorck(w, n_iter=n_iter, precision="tf32-mixed", return_info=True)
    assert info32.max_residual < 1e-4
    assert info_mixed.max_residual <= 2 * info32.max_residual + 1e-6
    from reflip._fast.cupy_bjorck import tf32_matmul

    with tf32_matmul(np.float32):
        _, info_tf32 = reflip.bjorck(w, n_iter=n_iter, return_info=True)
    assert info_tf32.max_residual > 10 * info32.max_residual


def test_mixed_mode_checkpoint_and_jvp_recompute_the_same_iterates():
    """Recomputed iterates follow the same TF32/float32 schedule: checkpointed and stored
    backward passes, and JVPs (which recompute the iterates in forward order), agree bit for bit."""
    w = _well_conditioned(96, seed=1)
    g = cupy.asarray(np.random.default_rng(2).standard_normal((96, 96)).astype(np.float32))
    _, res = reflip.bjorck_fwd(w, n_iter=10, precision="tf32-mixed")
    _, res_ck = reflip.bjorck_fwd(w, n_iter=10, precision="tf32-mixed", checkpoint=True)
    _same_bits(reflip.bjorck_bwd(res_ck, g), reflip.bjorck_bwd(res, g))
    _same_bits(reflip.bjorck_jvp(res_ck, g), reflip.bjorck_jvp(res, g))


def test_mixed_mode_rejects_float64_and_tol():
    w = _well_conditioned(8).astype(np.float64)
    with pytest.raises(ValueError, match="precision"):
        reflip.bjorck(w, precision="tf32-mixed")
    with pytest.raises(ValueError, match="tol"):
        reflip.bjorck(w.astype(np.float32), precision="tf32-mixed", tol=1e-3)

