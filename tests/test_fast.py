"""Fast paths against the array-API core, bit for bit [GS-7]."""
import array_api_compat.numpy as xp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reflip import _fast
from reflip._fast import numpy_groupsort as npgs
from reflip._fast import numpy_rows
from reflip.groupsort import _group_sort_bwd_core, _group_sort_fwd_core
from reflip.testing.strategies import group_sort_cases


def _same_bits(a, b):
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


def _same_bits_up_to_nan(a, b):
    """Bit for bit where ``b`` is not NaN, NaN where it is (any payload)."""
    nan = np.isnan(b) if b.dtype.kind == "f" else np.zeros(b.shape, dtype=bool)
    np.testing.assert_array_equal(np.isnan(a) if a.dtype.kind == "f" else False, nan)
    _same_bits(a[~nan], b[~nan])


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


_SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf, np.nan]


#: Quiet NaNs besides ``np.nan`` (float32 bits, float64 bits): a payload, x86's default NaN
#: (``inf - inf``, ``0 * inf``: the sign bit set), and a payload with the sign bit set. A sort key
#: that flips the bits of negative numbers sends the sign-bit NaNs to the other end (issue 20).
_NAN_BITS = ((0x7FC00001, 0x7FF8000000000001), (0xFFC00000, 0xFFF8000000000000),
             (0xFFC00001, 0xFFF8000000000001))


def _nan_payloads(dtype):
    """The quiet NaNs of ``_NAN_BITS`` in ``dtype``."""
    i = 0 if dtype == "float32" else 1
    bits = np.array([b[i] for b in _NAN_BITS], dtype=np.uint32 if dtype == "float32" else np.uint64)
    return list(bits.view(dtype))


def _with_specials(rng, shape, dtype, p_special):
    """Standard normal entries, each replaced with probability ``p_special`` by a signed zero,
    +-1, 2.5, an infinity or a NaN (four bit patterns, both signs): dense in ties and in every
    special case."""
    x = rng.standard_normal(shape).astype(dtype)
    special = rng.random(shape) < p_special
    pool = np.array([*_SPECIAL, *_nan_payloads(dtype)], dtype=dtype)
    x[special] = rng.choice(pool, size=int(special.sum()))
    return x


@pytest.mark.parametrize("block", [2, 4, 6, 64])
@pytest.mark.parametrize("k", [2, 3, 4, 8])
def test_blocks_are_core_bit_for_bit(k, block, dtype, monkeypatch):
    """[GS-7, GS-8, GS-12] the block paths (k = 2: contiguous shifted views and bit selects for
    the backward; k = 4: the min/max network; k = 3, 8: NumPy's sort and, with residuals, the
    packed-key integer sort (float32) or argsort (float64), flat gathers and scatters; each
    with the exact rule for the groups that need it) are the core bit for bit: values,
    permutation and VJP, across block boundaries (blocks of 2 to 64 entries, a last block cut
    short), on inputs dense in ties, signed zeros, infinities and NaN payloads."""
    monkeypatch.setattr(npgs, "BLOCK", block)

    @given(st.integers(1, 3), st.integers(1, 9), st.integers(0, 2**32 - 1), st.floats(0, 1))
    def check(rows, groups, seed, p_special):
        rng = np.random.default_rng(seed)
        x = _with_specials(rng, (rows, k * groups), dtype, p_special)
        x0 = x.copy()
        y_core, res_core = _group_sort_fwd_core(x, k, 1, xp)
        y_fast, perm_fast = _fast.group_sort_fwd(x, k, 1, xp)
        _same_bits(y_fast, y_core)
        np.testing.assert_array_equal(perm_fast, res_core.perm)
        y_bar = _with_specials(rng, x.shape, dtype, p_special)
        _same_bits(_fast.group_sort_bwd(perm_fast, y_bar, k, 1, xp),
                   _group_sort_bwd_core(res_core, y_bar, xp))
        y_vals = _fast.group_sort(x, k, 1, xp)
        if k > 2:
            _same_bits(y_vals, y_core)
        else:  # values only: pairs holding NaN become (NaN, NaN) [GS-8], the others are the core's
            clean = ~np.isnan(x.reshape(rows, groups, 2)).any(axis=-1).repeat(2, axis=-1)
            _same_bits(y_vals[clean], y_core[clean])
            assert np.isnan(y_vals[~clean]).all()
        _same_bits(x, x0)  # the input is not written to

    check()


@pytest.mark.parametrize("k", [257, 1024])
def test_wide_groups_are_core_bit_for_bit(k, dtype):
    """[GS-7, GS-12] groups wider than 256 (16-bit permutation; for float32 the position is
    read back from the low bits of the packed sort key) match the core: values, permutation,
    VJP, with ties, signed zeros and NaN among the entries."""
    rng = np.random.default_rng(k)
    x = _with_specials(rng, (3, 2 * k), dtype, 0.02)
    x[0] = np.round(x[0])  # many ties
    y_core, res_core = _group_sort_fwd_core(x, k, 1, xp)
    y, perm = _fast.group_sort_fwd(x, k, 1, xp)
    _same_bits(y, y_core)
    np.testing.assert_array_equal(perm, res_core.perm)
    y_bar = rng.standard_normal(x.shape).astype(dtype)
    _same_bits(_fast.group_sort_bwd(perm, y_bar, k, 1, xp), _group_sort_bwd_core(res_core, y_bar, xp))
    _same_bits(_fast.group_sort(x, k, 1, xp), y_core)


@pytest.mark.meta
def test_wide_group_check_catches_an_index_dtype_too_small(monkeypatch):
    """Meta: 8-bit permutation entries for groups of 257 (positions wrap modulo 256) fail the
    check above."""
    test_wide_groups_are_core_bit_for_bit(257, "float32")
    monkeypatch.setattr(npgs, "_index_dtype", lambda k: np.uint8)
    with pytest.raises(AssertionError):
        test_wide_groups_are_core_bit_for_bit(257, "float32")


@pytest.mark.parametrize("k", [2, 4, 8, 16])
def test_network_sorts_every_zero_one_input(k):
    """[GS-12] the odd-even merge network of the fast paths sorts all 2^k inputs in {1, 2}^k,
    hence (0-1 principle) every input; run through both network paths: the slice path (the
    groups down the columns of a (k, 2^k) matrix) and the k = 4 block path (groups in rows)."""
    bits = (np.arange(2**k)[None, :] >> np.arange(k)[:, None]) & 1
    # 1 and 2 rather than 0 and 1: a group holding +0 is re-sorted by np.sort [GS-12], which
    # would hide the network.
    x = 1.0 + bits
    np.testing.assert_array_equal(_fast.group_sort(x, k, 0, xp), np.sort(x, axis=0))
    if k in npgs._NETWORK_K:
        rows = np.ascontiguousarray(x.T)
        np.testing.assert_array_equal(_fast.group_sort(rows, k, 1, xp), np.sort(rows, axis=1))


@pytest.mark.meta
def test_zero_one_check_catches_a_wrong_network(monkeypatch):
    """Meta: a network missing the first comparator of its last layer ((1, 2) at k = 8; it
    still sorts most random inputs) fails the 0-1 check."""
    real = npgs._odd_even_merge_layers

    def wrong(k):
        layers = list(real(k))
        d, lows = layers[-1]
        layers[-1] = (d, lows[1:])
        return layers

    test_network_sorts_every_zero_one_input(8)
    monkeypatch.setattr(npgs, "_odd_even_merge_layers", wrong)
    with pytest.raises(AssertionError):
        test_network_sorts_every_zero_one_input(8)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("k", [2, 4, 8, 32])
def test_groups_across_rows_are_core_bit_for_bit(k, order, dtype):
    """[GS-7, GS-8, GS-12] groups along an axis that is not innermost in memory (the middle
    axis of a C- or F-order 3-d array) run the network on whole slices: the core's values bit
    for bit (k = 2: pairs holding NaN become (NaN, NaN), as on the last axis), with special
    values dense."""

    @given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(0, 2**32 - 1),
           st.floats(0, 1))
    def check(outer, groups, inner, seed, p_special):
        rng = np.random.default_rng(seed)
        x = _with_specials(rng, (outer, k * groups, inner), dtype, p_special)
        x = np.asarray(x, order=order)
        x0 = x.copy()
        y_core, _ = _group_sort_fwd_core(x, k, 1, xp)
        y = _fast.group_sort(x, k, 1, xp)
        assert y.flags.f_contiguous if order == "F" else y.flags.c_contiguous  # layout kept
        if k > 2:
            _same_bits(y, y_core)
        else:
            pair_nan = np.isnan(x.reshape(outer, groups, 2, inner)).any(axis=2, keepdims=True)
            clean = ~np.broadcast_to(pair_nan, (outer, groups, 2, inner)).reshape(x.shape)
            _same_bits(y[clean], y_core[clean])
            assert np.isnan(y[~clean]).all()
        _same_bits(x, x0)

    check()


@pytest.mark.meta
def test_block_check_catches_a_block_boundary_bug(monkeypatch):
    """Meta: a block loop whose blocks hold an odd number of entries (an off-by-one that cuts
    pairs in two at the boundaries) fails the comparison above."""
    monkeypatch.setattr(npgs, "BLOCK", 4)
    x = np.arange(12, dtype=np.float64)[::-1].copy().reshape(1, 12)
    y_core, _ = _group_sort_fwd_core(x, 2, 1, xp)
    _same_bits(_fast.group_sort(x, 2, 1, xp), y_core)

    def short_blocks(n):
        for start in range(0, n, npgs.BLOCK - 1):
            yield start, min(start + npgs.BLOCK - 1, n)

    monkeypatch.setattr(npgs, "_blocks", short_blocks)
    with pytest.raises(AssertionError):
        _same_bits(_fast.group_sort(x, 2, 1, xp), y_core)


@pytest.mark.meta
def test_block_check_catches_a_key_that_does_not_flip_negatives(monkeypatch):
    """Meta: packing the raw float32 bits as the sort key (negatives then sort descending, and
    after the positives) is caught by the bit comparison of the permutation."""
    x = np.array([[-1.0, -2.0, 3.0, 0.5, -0.25, 2.0, -3.0, 1.0]], dtype=np.float32)
    y_core, res_core = _group_sort_fwd_core(x, 8, 1, xp)
    np.testing.assert_array_equal(_fast.group_sort_fwd(x, 8, 1, xp)[1], res_core.perm)
    real_or = np.bitwise_or

    def no_flip(a, b, out=None, **kw):
        if isinstance(b, int) and b == 0x80000000:  # the sign-flip mask: leave the key raw
            return np.bitwise_and(a, 0, out=out)
        return real_or(a, b, out=out, **kw)

    monkeypatch.setattr(np, "bitwise_or", no_flip)
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(_fast.group_sort_fwd(x, 8, 1, xp)[1], res_core.perm)


@pytest.mark.meta
def test_block_check_catches_a_network_without_its_last_layer(monkeypatch):
    """Meta: the k = 4 network with its last comparator layer missing (the classic slip: the
    middle pair of a 4-sorter) leaves groups unsorted, which the bit comparison catches."""
    x = np.array([[1.0, 3.0, 2.0, 4.0]])
    y_core, _ = _group_sort_fwd_core(x, 4, 1, xp)
    _same_bits(_fast.group_sort(x, 4, 1, xp), y_core)
    layers = npgs._odd_even_merge_layers(4)
    monkeypatch.setattr(npgs, "_odd_even_merge_layers", lambda k: layers[:-1])
    with pytest.raises(AssertionError):
        _same_bits(_fast.group_sort(x, 4, 1, xp), y_core)


@pytest.mark.meta
@pytest.mark.parametrize("x", [[0.0, -0.0, 1.0, -1.0], [0.0] + [-0.0] * 8], ids=["network", "sort"])
def test_block_check_catches_skipped_zero_detection(x, monkeypatch):
    """Meta: without the search for groups holding a +0 (e.g. looking in the sorted output, where
    NumPy's SIMD sort may have turned the +0 of mixed zeros into -0), the network (k = 4) and
    the unstable sort (k = 9) return mixed zeros out of the stable order: the bit comparison
    catches both."""
    x = np.array([x])
    k = x.shape[-1]
    y_core, _ = _group_sort_fwd_core(x, k, 1, xp)
    _same_bits(_fast.group_sort(x, k, 1, xp), y_core)
    monkeypatch.setattr(npgs, "_holds_plus_zero", lambda a: False)
    y = _fast.group_sort(x, k, 1, xp)
    with pytest.raises(AssertionError):
        _same_bits(y, y_core)


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
    monkeypatch.setattr(npgs, "_numpy_max_min", swapped)
    with pytest.raises(AssertionError):
        _same_bits(_fast.group_sort(x, 2, 1, xp), y_core)


@pytest.mark.parametrize("block", [8, 24])
@pytest.mark.parametrize("threshold", ["exact", "detached"])
def test_linf_row_blocks_are_core_bit_for_bit(block, threshold, dtype, monkeypatch):
    """[PR-3, PR-4, PR-13] the l_inf projection run on blocks of rows is the single-call core
    bit for bit (NaN where the core has NaN: which NaN a product returns depends on whether
    NumPy's SIMD body or its scalar tail computed it, and [PR-13] promises NaN, not a payload):
    output and every residual, on stacks of rows that are projected, left inside (small rows)
    or non-finite, with a last block cut short."""
    from reflip.projections import _l1_ball_fwd

    monkeypatch.setattr(numpy_rows, "BLOCK", block)

    @given(st.integers(1, 3), st.integers(1, 7), st.integers(1, 6), st.integers(0, 2**32 - 1),
           st.floats(0, 0.3))
    def check(stack, rows, n, seed, p_special):
        rng = np.random.default_rng(seed)
        w = _with_specials(rng, (stack, rows, n), dtype, p_special)
        w[:, ::3] *= 0.05  # every third row inside the unit l1 ball
        w0 = w.copy()
        y_core, res_core = _l1_ball_fwd(w, 1.0, threshold, xp)
        y, res = reflip.linf_project_fwd(w, threshold=threshold)
        _same_bits_up_to_nan(y, y_core)
        for name, core_value in res_core._asdict().items():
            if isinstance(core_value, np.ndarray):
                _same_bits_up_to_nan(getattr(res, name), core_value)
            else:
                assert getattr(res, name) == core_value
        _same_bits_up_to_nan(reflip.linf_project(w, threshold=threshold), y_core)
        _same_bits(w, w0)

    import reflip

    check()


@pytest.mark.meta
def test_linf_row_block_check_catches_a_dropped_last_block(monkeypatch):
    """Meta: a row-block loop that leaves a short last block out (its rows are never written)
    fails the comparison above."""
    from reflip.projections import _l1_ball_fwd

    monkeypatch.setattr(numpy_rows, "BLOCK", 8)
    w = np.random.default_rng(0).standard_normal((5, 4))
    y_core, _ = _l1_ball_fwd(w, 1.0, "exact", xp)
    import reflip

    _same_bits_up_to_nan(reflip.linf_project(w), y_core)
    real = numpy_rows.row_blocks

    def drop_last(fn, w):
        out = real(fn, w[:4])
        return None if out is None else (np.concatenate([out[0], np.zeros_like(w[4:])]), out[1])

    monkeypatch.setattr(numpy_rows, "row_blocks", drop_last)
    with pytest.raises(AssertionError):
        _same_bits_up_to_nan(reflip.linf_project(w), y_core)


@pytest.mark.parametrize("k", [2, 3, 4, 8])
def test_fast_paths_do_not_warn_on_infinities_and_huge_values(k, dtype):
    """Sorting never overflows nor makes a NaN, so GroupSort emits no floating-point warning: the
    fast paths' NaN tests (sums over a block, which meet ``inf - inf`` and overflow) run with
    those warnings silenced, on every path, with and without residuals."""
    import warnings

    big = np.finfo(dtype).max
    for x in (np.array([[np.inf, -np.inf, big, big] * (2 * k)], dtype=dtype), np.full((1, 8 * k), big, dtype)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _check_all_paths(x, k)


def _check_all_paths(x, k):
    for axis in (0, 1):
        xa = np.ascontiguousarray(x.T) if axis == 0 else x
        y_core, res_core = _group_sort_fwd_core(xa, k, axis, xp)
        _same_bits(_fast.group_sort(xa, k, axis, xp), y_core)
        y, perm = _fast.group_sort_fwd(xa, k, axis, xp)
        _same_bits(y, y_core)
        np.testing.assert_array_equal(perm, res_core.perm)


@pytest.mark.parametrize("k", [3, 8, 255, 256, 257])
def test_permutation_residual_uses_the_smallest_unsigned_type(k, dtype):
    """The permutation residual of groups wider than 4 is stored in the smallest unsigned type
    that holds ``0 .. k - 1`` (one byte up to ``k = 256``, two beyond): as large as the input,
    it would otherwise take 2-8x the memory and backward reads; its values are the core's."""
    x = np.random.default_rng(k).standard_normal((2, k)).astype(dtype)
    _, perm = _fast.group_sort_fwd(x, k, 1, xp)
    assert perm.dtype == (np.uint8 if k <= 256 else np.uint16)
    np.testing.assert_array_equal(perm, _group_sort_fwd_core(x, k, 1, xp)[1].perm)


def _same_entries(a, b):
    """Bit for bit, except longdouble: equal values with equal signs and NaN where ``b`` has NaN
    (its padding bytes are not part of the value, and NaN payloads are not compared there)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype != np.longdouble or np.dtype(np.longdouble).itemsize == 8:
        _same_bits(a, b)
        return
    nan = np.isnan(b)
    np.testing.assert_array_equal(np.isnan(a), nan)
    np.testing.assert_array_equal(a[~nan], b[~nan])
    np.testing.assert_array_equal(np.signbit(a[~nan]), np.signbit(b[~nan]))


def _check_against_core(x, k, axis):
    """Values, permutation and VJP of the fast paths against the core (k = 2 values only: pairs
    holding NaN become (NaN, NaN) [GS-8]); the VJP also from the core's own permutation, whose
    int64 dtype every backward accepts (GroupSortResiduals); the input is not written to."""
    x0 = x.copy()
    y_core, res_core = _group_sort_fwd_core(x, k, axis, xp)
    y, perm = _fast.group_sort_fwd(x, k, axis, xp)
    _same_entries(y, y_core)
    np.testing.assert_array_equal(perm, res_core.perm)
    y_vals = _fast.group_sort(x, k, axis, xp)
    if k > 2:
        _same_entries(y_vals, y_core)
    else:
        pairs = np.moveaxis(x, axis, -1)
        pair_nan = np.isnan(pairs.reshape(*pairs.shape[:-1], -1, 2)).any(axis=-1).repeat(2, axis=-1)
        clean = ~np.moveaxis(pair_nan, -1, axis)
        _same_entries(y_vals[clean], y_core[clean])
        assert np.isnan(y_vals[~clean]).all()
    y_bar = np.random.default_rng(x.size).standard_normal(x.shape).astype(x.dtype)
    x_bar = _group_sort_bwd_core(res_core, y_bar, xp)
    _same_entries(_fast.group_sort_bwd(perm, y_bar, k, axis, xp), x_bar)
    _same_entries(_fast.group_sort_bwd(res_core.perm, y_bar, k, axis, xp), x_bar)
    _same_entries(x, x0)


@pytest.mark.parametrize("k", [2, 3, 4, 8])
def test_strided_inputs_are_core_bit_for_bit(k, dtype):
    """[GS-7, GS-8] inputs that are neither C- nor F-contiguous (every other entry of a larger
    array along each axis of a 3-d array), grouped along each axis, take the fast paths'
    strided fallbacks: values, permutation and VJP are the core's bit for bit, on inputs with
    and without signed zeros, infinities and NaN payloads."""
    rng = np.random.default_rng(k)
    for p_special in (0.0, 0.5):
        for axis in range(3):
            shape = [2, 3, 3]
            shape[axis] = 2 * k
            x = _with_specials(rng, tuple(2 * n for n in shape), dtype, p_special)[::2, ::2, ::2]
            assert not (x.flags.c_contiguous or x.flags.f_contiguous)
            _check_against_core(x, k, axis)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_backward_accepts_every_permutation_dtype(k, dtype):
    """[GS-4] the fast VJP accepts the permutation residual in any integer dtype (the core's
    int64, the fast paths' uint8, int32), C-contiguous or not, and returns the core's VJP bit for
    bit: a fast path for one index dtype must not read another's bytes as its own."""
    rng = np.random.default_rng(k)
    x = _with_specials(rng, (3, 4 * k), dtype, 0.3)
    _, res_core = _group_sort_fwd_core(x, k, 1, xp)
    y_bar = _with_specials(rng, x.shape, dtype, 0.3)
    x_bar = _group_sort_bwd_core(res_core, y_bar, xp)
    for index_dtype in (np.int64, np.uint8, np.int32):
        perm = res_core.perm.astype(index_dtype)
        _same_bits(_fast.group_sort_bwd(perm, y_bar, k, 1, xp), x_bar)
        strided = np.repeat(perm, 2, axis=0)[::2]
        assert not strided.flags.c_contiguous
        _same_bits(_fast.group_sort_bwd(strided, y_bar, k, 1, xp), x_bar)


def _corner_case_groups(rng, k, dtype):
    """Inputs of two rows of ``k`` entries, one kind of group each: constant groups (NumPy's
    unstable sort is not the identity on constant rows of more than 16 float16 or longdouble
    entries), mixed zeros only, mixed zeros with a -1.5 (a minimum below 0, and zeros that NumPy's
    unstable sort of more than 16 entries reorders), and standard normal entries with special
    values (signed zeros, infinities, NaN)."""
    j = np.arange(k)
    zeros = np.where(np.stack([j % 2, j // 2 % 2]) == 1, -0.0, 0.0)  # (+0, -0, +0, ..), (+0, +0, -0, -0, ..)
    negative = zeros.copy()
    negative[:, -1] = -1.5
    pool = np.array(_SPECIAL, dtype=dtype)
    special = rng.standard_normal((2, k)).astype(dtype)
    replace = rng.random((2, k)) < 0.3
    special[replace] = rng.choice(pool, size=int(replace.sum()))
    return [np.asarray(a, dtype=dtype) for a in (np.full((2, k), 1.5), zeros, negative, special)]


@pytest.mark.parametrize("dtype_name", ["float16", "longdouble"])
@pytest.mark.parametrize("k", [2, 3, 4, 8, 17, 32])
def test_float16_and_longdouble_are_core_bit_for_bit(k, dtype_name):
    """[GS-1, GS-7] GroupSort takes every real floating dtype, float16 and longdouble included,
    whose NumPy sorts and minimum/maximum differ from float32's and float64's (unstable sorts
    that reorder constant groups, the other zero returned at a tie of signed zeros): values,
    permutation and VJP are the core's, on groups in rows (C order) and across rows (C and F
    order), contiguous and strided, with constant groups, mixed zeros, zeros with negatives and
    special values."""
    rng = np.random.default_rng(k)
    for x in _corner_case_groups(rng, k, dtype_name):
        _check_against_core(x, k, 1)
        columns = np.ascontiguousarray(x.T)
        _check_against_core(columns, k, 0)
        _check_against_core(np.asfortranarray(x), k, 1)
        _check_against_core(np.repeat(x, 2, axis=1)[:, ::2], k, 1)


@pytest.mark.parametrize("dtype_name", ["float16", "float32", "float64", "longdouble"])
def test_pairs_only_move_entries_in_every_dtype(dtype_name):
    """[GS-1] GroupSort only moves entries: at k = 2 every output pair is its input pair, in
    order or swapped, with its minimum first, in every floating dtype and layout (pairs of
    signed zeros, of equal values, with infinities; the NaN pairs of the values-only path
    excepted [GS-8])."""
    values = np.array([0.0, -0.0, 1.5, -1.5, np.inf, -np.inf], dtype=dtype_name)
    a, b = np.meshgrid(values, values)
    x = np.stack([a.ravel(), b.ravel()], axis=-1).reshape(1, -1)
    for xa, axis in ((x, 1), (np.ascontiguousarray(x.T), 0), (np.repeat(x, 2, axis=1)[:, ::2], 1)):
        for y in (_fast.group_sort(xa, 2, axis, xp), _fast.group_sort_fwd(xa, 2, axis, xp)[0]):
            assert y.dtype == xa.dtype and y.shape == xa.shape
            p, q = np.moveaxis(xa, axis, -1)[..., 0::2], np.moveaxis(xa, axis, -1)[..., 1::2]
            u, v = np.moveaxis(y, axis, -1)[..., 0::2], np.moveaxis(y, axis, -1)[..., 1::2]

            def same(s, t):
                return (s == t) & (np.signbit(s) == np.signbit(t))

            assert ((same(u, p) & same(v, q)) | (same(u, q) & same(v, p))).all()
            assert (u <= v).all()
