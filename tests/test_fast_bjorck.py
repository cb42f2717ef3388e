"""The fused Björck products of the NumPy fast path (reflip/_fast/numpy_bjorck.py) against the
array-API core, within the rounding bound proved in [BJ-11]: the Gram matrix, the step and the
reverse step [BJ-8] on the same inputs, every step of a forward run and of its unrolled
backward, inputs never modified nor copied, the fallback to the core without SciPy.

The bound is ``|fused - core| <= 2 gamma_D |y|_abs`` entrywise, ``|y|_abs`` the absolute
evaluation (the core's own program run on absolute values in float64) and ``D`` the rounding
depth of [BJ-11]; :func:`check_fast_against_core` is also what the planted bugs of
tests/meta/test_fast_bjorck_mutants.py must fail.
"""
import importlib
import itertools
import sys
import tracemalloc
import types

import array_api_compat.numpy as xp
import array_api_strict
import numpy as np
import pytest

import reflip
from reflip import _fast
from reflip._fast import numpy_bjorck as nb
from reflip.tolerances import eps

# The module (reflip.bjorck, the attribute, is the function).
bj = importlib.import_module("reflip.bjorck")
QUIET = {"on_nonconvergence": "ignore"}


@pytest.fixture(autouse=True)
def _small_matrices_take_the_fast_path(monkeypatch):
    """The fast path declines matrices below ``MIN_N`` (slower there, measured); the tests use
    small ones, so they lower it (the dispatch test checks the threshold itself)."""
    monkeypatch.setattr(nb, "MIN_N", 1)


@pytest.fixture(autouse=True)
def _cblas_loaded_afresh(monkeypatch):
    """The CBLAS wrapper over NumPy's OpenBLAS is loaded once per process and cached; each test
    loads it again (a cheap ``dlopen`` of a loaded library), so that every test exercises the
    loader and the ctypes signatures in its own process instead of whatever object an earlier
    test left in the cache."""
    monkeypatch.setattr(nb, "_NUMPY_CBLAS", [])


def gamma(d, dtype):
    """``gamma_D = D u / (1 - D u)``, ``u = eps / 2`` [BJ-11]."""
    u = eps(dtype) / 2
    return d * u / (1 - d * u)


def depths(m, n, p):
    """Rounding depths of [BJ-11] for the tall shape ``M x N`` and order ``p``."""
    return {"gram": m + 4, "step": p * (n + 4) + 2, "vjp": m + p * (n + 4) + 2 * p + 9}


def assert_within(fused, core, magnitude, d, what):
    """``|fused - core| <= 2 gamma_D magnitude`` entrywise [BJ-11], the float64 magnitude
    enlarged by ``1 / (1 - gamma_D(float64))`` for its own rounding and the float64 difference
    by one more unit roundoff."""
    dtype = fused.dtype
    bound = 2 * gamma(d, dtype) * magnitude / (1 - gamma(d + 2, np.float64))
    diff = np.abs(fused.astype(np.float64) - core.astype(np.float64)) * (1 - eps(np.float64))
    bad = ~(diff <= bound)  # NaN fails too
    assert not bad.any(), (f"{what}: fused and core differ beyond the [BJ-11] bound at {int(bad.sum())} "
                           f"entries; worst ratio {float(np.max(diff / np.maximum(bound, 1e-300))):.3g}")
    return float(np.max(diff / np.maximum(bound, 1e-300)))


def _abs64(a):
    return np.abs(np.asarray(a, dtype=np.float64))


def _core_step(a, x, coeffs):
    return bj._step(a, x, coeffs, bj._scaled_eyes(coeffs, a, xp))


def _core_vjp(a, x, g, coeffs):
    return bj._step_vjp(a, x, g, coeffs, bj._scaled_eyes(coeffs, a, xp))


def check_products(steps, a, g, coeffs):
    """Gram matrix, step and reverse step of ``steps`` on ``a`` (and cotangent ``g``) against
    the core within [BJ-11]; returns the worst ratio to the bound."""
    m, n, p = a.shape[-2], a.shape[-1], len(coeffs) - 1
    d = depths(m, n, p)
    acoef = tuple(abs(c) for c in coeffs)
    aa = _abs64(a)
    x = steps.gram(a)
    worst = assert_within(x, a.mT @ a, aa.mT @ aa, d["gram"], "Gram matrix")
    ax = _abs64(x)
    worst = max(worst, assert_within(steps.step(a, x), _core_step(a, x, coeffs),
                                     _core_step(aa, ax, acoef), d["step"], "step"))
    worst = max(worst, assert_within(steps.step_vjp(a, x, g), _core_vjp(a, x, g, coeffs),
                                     _core_vjp(aa, ax, _abs64(g), acoef), d["vjp"], "reverse step"))
    return worst


class _Spy:
    """Records every reverse step of the fast path: its inputs and a copy of its result (the
    results live in reused buffers)."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = nb.BjorckSteps.step_vjp

        def step_vjp(steps, a, x, g):
            out = original(steps, a, x, g)
            self.calls.append((a, x, np.array(g), np.array(out), steps.coeffs))
            return out

        monkeypatch.setattr(nb.BjorckSteps, "step_vjp", step_vjp)


def check_fast_against_core(w, g, order, monkeypatch, n_iter=5):
    """The whole fused path on one input [BJ-11]: products on the scaled input, every step of
    a forward run (each stored ``(A_k, X_k)`` against the core's Gram matrix of ``A_k`` and
    ``A_{k+1}`` against the core's step from ``(A_k, X_k)``), every reverse step of its
    unrolled backward, and the fast path really taken (a forward without it stores the
    core's iterates, which this would not detect). Raises AssertionError."""
    coeffs = bj.bjorck_coefficients(order)
    transposed = w.shape[-2] < w.shape[-1]
    a0, _ = bj._scale(w.mT if transposed else w, "frobenius", xp)
    steps = _fast.bjorck_steps(a0, coeffs, "default", xp)
    assert isinstance(steps, nb.BjorckSteps), "no fast path for a NumPy float array"
    gt = g.mT if transposed else g
    check_products(steps, a0, gt, coeffs)
    spy = _Spy(monkeypatch)
    y, res = reflip.bjorck_fwd(w, order=order, n_iter=n_iter, **QUIET)
    w_bar = reflip.bjorck_bwd(res, g)
    d = depths(a0.shape[-2], a0.shape[-1], order)
    nexts = [a for a, _ in res.iterates[1:]] + [res.y]
    for (a, x), a_next in zip(res.iterates, nexts, strict=True):
        aa = _abs64(a)
        assert_within(x, a.mT @ a, aa.mT @ aa, d["gram"], "forward Gram matrix")
        assert_within(a_next, _core_step(a, x, coeffs), _core_step(aa, _abs64(x), tuple(map(abs, coeffs))),
                      d["step"], "forward step")
    assert len(spy.calls) == n_iter, "the backward did not run the fused reverse steps"
    for a, x, gk, out, c in spy.calls:
        assert_within(out, _core_vjp(a, x, gk, c), _core_vjp(_abs64(a), _abs64(x), _abs64(gk), tuple(map(abs, c))),
                      d["vjp"], "reverse step")
    return y, w_bar


SHAPES = [(48, 48), (70, 30), (30, 70), (3, 40, 24), (2, 17, 33)]


def _backends():
    """The BLAS backends present here: NumPy's bundled OpenBLAS (through ctypes) and SciPy's."""
    out = ["numpy"] if nb._numpy_cblas() is not None else []
    try:
        import scipy.linalg.blas  # noqa: F401
    except ImportError:
        return out
    return [*out, "scipy"]


@pytest.mark.parametrize("blas", _backends())
@pytest.mark.parametrize("gram", ["syrk", "gemm"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fused_path_within_the_proved_bound(shape, order, gram, blas, dtype, monkeypatch):
    """[BJ-11] Gram matrix, step and reverse step, and every step of a forward and backward
    run, within ``2 gamma_D |y|_abs`` of the core: square, tall, wide (the tall view is
    Fortran-ordered), stacks of each; the Gram matrix by SYRK with its triangle mirrored in
    tiles of 16 (several tiles, a last one cut short) or by GEMM; on NumPy's own BLAS and on
    SciPy's."""
    monkeypatch.setattr(nb, "BACKEND", blas)
    monkeypatch.setattr(nb, "GRAM", gram)
    monkeypatch.setattr(nb, "MIRROR_BLOCK", 16)
    rng = np.random.default_rng(sum(shape) + order)
    w = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    check_fast_against_core(w, g, order, monkeypatch)


@pytest.mark.parametrize("order", [1, 3])
def test_bound_holds_on_iterates_near_and_far_from_convergence(order, dtype):
    """[BJ-11] the products on a badly scaled first iterate (singular values down to 1e-3) and
    on a nearly orthonormal late one (``X`` close to ``I``: the cancellation in ``a_0 + a_1``
    is largest there), for C- and Fortran-ordered ``A`` and a strided cotangent."""
    rng = np.random.default_rng(order)
    n = 40
    u, _ = np.linalg.qr(rng.standard_normal((2 * n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    coeffs = bj.bjorck_coefficients(order)
    for spread in (np.geomspace(1e-3, 1, n), 1 + 1e-3 * rng.standard_normal(n)):
        a = ((u * spread) @ v.T).astype(dtype)
        g = rng.standard_normal((2 * n, 2 * n)).astype(dtype)[:, ::2]  # neither C nor F order
        for layout in (np.ascontiguousarray(a), np.asfortranarray(a)):
            check_products(nb.steps(layout, coeffs, reuse=False), layout, g, coeffs)


def test_per_call_coefficients(dtype):
    """[BJ-11] ``step(..., coeffs=)`` and ``step_vjp(..., coeffs=)`` on one workspace (an
    iteration whose polynomial changes every step, like the polar iteration) stay within the
    bound of the core with those coefficients, alternating degrees and orders."""
    rng = np.random.default_rng(9)
    a = rng.standard_normal((50, 30)).astype(dtype) / 30
    g = rng.standard_normal((50, 30)).astype(dtype)
    fast = nb.steps(a, bj.bjorck_coefficients(1), reuse=True)
    for coeffs in [bj.bjorck_coefficients(3), (1.9, -1.3, 0.4), bj.bjorck_coefficients(1), (2.0, -1.5, 0.5)]:
        x = fast.gram(a)
        d = depths(50, 30, len(coeffs) - 1)
        acoef = tuple(map(abs, coeffs))
        assert_within(fast.step(a, x, coeffs), _core_step(a, x, coeffs), _core_step(_abs64(a), _abs64(x), acoef),
                      d["step"], "step with per-call coefficients")
        assert_within(fast.step_vjp(a, x, g, coeffs), _core_vjp(a, x, g, coeffs),
                      _core_vjp(_abs64(a), _abs64(x), _abs64(g), acoef), d["vjp"], "reverse step, per-call")


def test_bjorck_and_bjorck_fwd_and_checkpoint_agree_bit_for_bit(dtype):
    """The fused path gives the same bits whether its buffers are reused (``bjorck``) or not
    (``bjorck_fwd``, checkpoint recomputation): the same products on the same layouts."""
    rng = np.random.default_rng(7)
    for shape in [(64, 40), (40, 64), (3, 20, 20)]:
        w = rng.standard_normal(shape).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        y, res = reflip.bjorck_fwd(w, order=2, n_iter=9, **QUIET)
        np.testing.assert_array_equal(reflip.bjorck(w, order=2, n_iter=9, **QUIET), y)
        _, res_c = reflip.bjorck_fwd(w, order=2, n_iter=9, checkpoint=True, **QUIET)
        np.testing.assert_array_equal(reflip.bjorck_bwd(res_c, g), reflip.bjorck_bwd(res, g))


def test_inputs_never_modified_and_contiguous_operands_never_copied(monkeypatch):
    """The fused path writes only into its own arrays and passes C- or Fortran-ordered
    operands to BLAS as they are (the copy of a strided operand is replaced by a failure);
    ``scaling="none"`` iterates from the caller's own array."""

    def no_copy(m):
        raise AssertionError(f"a contiguous operand was copied (strides {m.strides})")

    monkeypatch.setattr(nb, "_copy", no_copy)
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((50, 30)))
    cases = [(rng.standard_normal((50, 30)), {}), (rng.standard_normal((30, 50)), {}),
             (rng.standard_normal((2, 30, 50)), {"order": 3}), (0.9 * q, {"scaling": "none"}),
             (np.asfortranarray(rng.standard_normal((50, 30))), {"order": 2})]
    for w, kw in cases:
        w_before, g = w.copy(), rng.standard_normal(w.shape)
        g_before = g.copy()
        y, res = reflip.bjorck_fwd(w, n_iter=6, **kw, **QUIET)
        reflip.bjorck_bwd(res, g)
        reflip.bjorck_jvp(res, g)
        reflip.bjorck(w, n_iter=6, **kw, **QUIET)
        np.testing.assert_array_equal(w, w_before)
        np.testing.assert_array_equal(g, g_before)
        assert not any(np.shares_memory(y, arr) for arr in (w, g))


def test_falls_back_to_the_core_without_any_blas(monkeypatch, dtype):
    """Without SciPy (its import fails) and without NumPy's bundled OpenBLAS (a NumPy built
    otherwise) there is no fast path and the core runs: the results are the core's bit for
    bit. With NumPy's OpenBLAS but no SciPy the fast path still runs."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((30, 20)).astype(dtype)
    g = rng.standard_normal((30, 20)).astype(dtype)
    with monkeypatch.context() as m:
        m.setattr(nb, "ENABLED", False)
        y_core, res_core = reflip.bjorck_fwd(w, n_iter=7, **QUIET)
        bar_core = reflip.bjorck_bwd(res_core, g)
    monkeypatch.setitem(sys.modules, "scipy.linalg", None)  # `from scipy.linalg import blas` fails
    monkeypatch.setitem(sys.modules, "scipy", None)
    if nb._numpy_cblas() is not None:
        assert isinstance(_fast.bjorck_steps(w, (1.5, -0.5), "default", xp), nb.BjorckSteps)
    monkeypatch.setattr(nb, "_NUMPY_CBLAS", [None])
    assert _fast.bjorck_steps(w, (1.5, -0.5), "default", xp) is None
    y, res = reflip.bjorck_fwd(w, n_iter=7, **QUIET)
    np.testing.assert_array_equal(y, y_core)
    np.testing.assert_array_equal(reflip.bjorck_bwd(res, g), bar_core)


def test_dispatch_only_numpy_float_matrices_and_stacks():
    """The fast path takes 2-d and 3-d NumPy float32/float64 arrays in the default precision
    whose matrices' smaller side is at least ``MIN_N`` (however many matrices a stack holds);
    anything else (deeper stacks, other dtypes, other namespaces, other precisions, small
    matrices) returns None and the core runs."""
    c = (1.5, -0.5)
    assert isinstance(_fast.bjorck_steps(np.ones((3, 2), np.float32), c, "default", xp), nb.BjorckSteps)
    assert isinstance(_fast.bjorck_steps(np.ones((2, 3, 2)), c, "default", xp), nb.BjorckSteps)
    assert _fast.bjorck_steps(np.ones((2, 2, 3, 2)), c, "default", xp) is None
    for other in (np.float16, np.int64, np.complex128):
        assert _fast.bjorck_steps(np.ones((3, 2), other), c, "default", xp) is None, other
    with pytest.MonkeyPatch.context() as m:
        m.setattr(nb, "MIN_N", 8)
        assert _fast.bjorck_steps(np.ones((20, 7)), c, "default", xp) is None
        assert _fast.bjorck_steps(np.ones((7, 20)), c, "default", xp) is None
        assert isinstance(_fast.bjorck_steps(np.ones((20, 8)), c, "default", xp), nb.BjorckSteps)
        # The threshold is on the matrices' sides: a stack of fewer than MIN_N matrices is taken.
        assert isinstance(_fast.bjorck_steps(np.ones((2, 20, 8)), c, "default", xp), nb.BjorckSteps)
        assert _fast.bjorck_steps(np.ones((2, 20, 7)), c, "default", xp) is None
    assert _fast.bjorck_steps(np.ones((3, 2)), c, "tf32-mixed", xp) is None
    strict = array_api_strict.ones((3, 2), dtype=array_api_strict.float64)
    assert _fast.bjorck_steps(strict, c, "default", array_api_strict) is None
    # A 4-d stack runs the core and still works.
    w = np.random.default_rng(0).standard_normal((2, 2, 6, 4))
    y = reflip.bjorck(w, n_iter=30)
    np.testing.assert_allclose(np.swapaxes(y, -1, -2) @ y, np.broadcast_to(np.eye(4), (2, 2, 4, 4)), atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_fused_result_against_the_svd_polar_factor(order):
    """[BJ-11] [BJ-3] [BJ-7] the fused forward (float64, square) lands within a proved distance
    of ``U V^T`` from a float64 SVD of ``w``:

    - the scaling rounds each entry of ``A_0 = w / c`` twice (``||E||_F <= 2u ||A_0||_F``; the
      error of ``c`` itself does not move the polar factor);
    - in exact arithmetic a step keeps the polar factor [BJ-3]; the fused Gram matrix and step
      together perturb ``A_{k+1}`` by ``E_k``, ``||E_k||_F <= gamma_D ||T_k||_F`` with
      ``D = D_step + p D_gram`` (the lemma of [BJ-11] on the composite program, ``X`` entering a
      monomial at most ``p`` times) and ``T_k = |A| P_abs(|A|^T |A|)``;
    - a perturbation ``E`` of a square ``A`` moves its polar factor by at most
      ``2 ||E||_F / (s_n(A) + s_n(A + E))`` (R.-C. Li, SIAM J. Matrix Anal. Appl. 16, 1995), and
      the exact step's smallest singular value is ``phi(s_n(A_k)) >= s_n(A_k)`` on ``(0, 1]``
      [BJ-5], so ``s_n(A_k)`` may stand for it;
    - ``||Y - Q(Y)||_F <= ||Y^T Y - I||_F`` [BJ-7], that residual computed here in float64 with
      an error below ``gamma_{N+2} ||Y||_F^2``.
    """
    rng = np.random.default_rng(order)
    n = 24
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    w = (u * np.linspace(0.3, 1.0, n)) @ v.T
    y, res = reflip.bjorck_fwd(w, order=order, n_iter=30)
    assert isinstance(_fast.bjorck_steps(res.w, res.config.coeffs, "default", xp), nb.BjorckSteps)
    acoef = tuple(map(abs, res.config.coeffs))
    dd = depths(n, n, order)
    d = dd["step"] + order * dd["gram"]

    def s_min(m):
        return np.linalg.svd(m, compute_uv=False)[-1]

    a0 = res.iterates[0][0]
    bound = 2 * eps(np.float64) * np.linalg.norm(a0) / s_min(a0)  # 2 (2u ||A_0||) / (2 s_n), s_n(A_0 + E) >= s_n / 2
    nexts = [a for a, _ in res.iterates[1:]] + [res.y]
    for (a, _), a_next in zip(res.iterates, nexts, strict=True):
        aa = _abs64(a)
        e = gamma(d, np.float64) * np.linalg.norm(_core_step(aa, aa.T @ aa, acoef))
        bound += 2 * e / (s_min(a) + s_min(a_next))
    resid = np.linalg.norm(y.T @ y - np.eye(n)) + gamma(n + 2, np.float64) * np.linalg.norm(y) ** 2
    err = np.linalg.norm(y - u @ v.T)
    assert err <= bound + resid, (err, bound, resid)


def test_backend_setting_picks_the_blas(monkeypatch):
    """:data:`BACKEND`: ``"numpy"`` takes NumPy's bundled OpenBLAS even without SciPy and runs the
    core (``None``) when NumPy has none, never SciPy's; ``"auto"`` falls back to SciPy's; ``"scipy"``
    takes SciPy's."""
    import scipy.linalg.blas as sblas

    w = np.ones((4, 3), np.float32)
    monkeypatch.setattr(nb, "BACKEND", "auto")
    assert _fast.bjorck_steps(w, (1.5, -0.5), "default", xp)._gemm is not sblas.sgemm
    monkeypatch.setattr(nb, "BACKEND", "scipy")
    assert _fast.bjorck_steps(w, (1.5, -0.5), "default", xp)._gemm is sblas.sgemm
    with monkeypatch.context() as m:
        m.setattr(nb, "BACKEND", "numpy")
        m.setitem(sys.modules, "scipy.linalg", None)
        m.setitem(sys.modules, "scipy", None)
        assert isinstance(_fast.bjorck_steps(w, (1.5, -0.5), "default", xp), nb.BjorckSteps)
    monkeypatch.setattr(nb, "_NUMPY_CBLAS", [None])  # a NumPy without its own OpenBLAS
    monkeypatch.setattr(nb, "BACKEND", "numpy")
    assert _fast.bjorck_steps(w, (1.5, -0.5), "default", xp) is None
    monkeypatch.setattr(nb, "BACKEND", "auto")
    assert _fast.bjorck_steps(w, (1.5, -0.5), "default", xp)._gemm is sblas.sgemm


@pytest.mark.parametrize("gram", ["syrk", "gemm"])
def test_gram_setting_selects_the_routine(gram, monkeypatch):
    """:data:`GRAM` decides how ``A^T A`` is formed: ``"syrk"`` calls SYRK once per matrix and
    no GEMM, ``"gemm"`` one GEMM per matrix and no SYRK."""
    calls = {"syrk": 0, "gemm": 0}
    for name in calls:
        real = getattr(nb, f"_{name}")

        def spy(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(nb, f"_{name}", spy)
    monkeypatch.setattr(nb, "GRAM", gram)
    a = np.random.default_rng(0).standard_normal((2, 6, 4))
    x = nb.steps(a, (1.5, -0.5), reuse=False).gram(a)
    np.testing.assert_allclose(x, a.mT @ a, rtol=1e-12, atol=1e-12)
    assert calls == {"syrk": 2 if gram == "syrk" else 0, "gemm": 2 if gram == "gemm" else 0}


def test_reused_results_alternate_between_two_buffers(dtype):
    """With ``reuse=True`` the results of ``step`` (and of ``step_vjp``) alternate between two
    buffers: a result stays valid through the next call and its buffer is written again by the
    second next, so an iteration holds two arrays, not one per step; ``reuse=False`` gives a
    new array every call."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((7, 5)).astype(dtype)
    g = rng.standard_normal((7, 5)).astype(dtype)
    for method, args in (("step", ()), ("step_vjp", (g,))):
        fast = nb.steps(a, bj.bjorck_coefficients(2), reuse=True)
        x = fast.gram(a)
        r1 = getattr(fast, method)(a, x, *args)
        first = r1.copy()
        r2 = getattr(fast, method)(a, x, *args)
        assert not np.shares_memory(r1, r2), method
        np.testing.assert_array_equal(r1, first)  # still valid after the next call
        r3 = getattr(fast, method)(a, x, *args)
        assert r3 is r1, method
        fresh = nb.steps(a, bj.bjorck_coefficients(2), reuse=False)
        s1 = getattr(fresh, method)(a, x, *args)
        s2 = getattr(fresh, method)(a, x, *args)
        s3 = getattr(fresh, method)(a, x, *args)
        assert not any(np.shares_memory(p, q) for p, q in ((s1, s2), (s1, s3), (s2, s3))), method


def test_stacks_of_one_matrix_and_of_strided_matrices(dtype, monkeypatch):
    """[BJ-11] the fused path on a stack holding one matrix, on a stack whose stack axis lies
    between the matrix axes in memory, and on a Fortran-ordered stack (in both, each matrix is
    neither C- nor Fortran-ordered: the results are allocated in C order and the operands
    copied once), within the bound of the core."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal((1, 30, 20)).astype(dtype)
    check_fast_against_core(w, rng.standard_normal(w.shape).astype(dtype), 2, monkeypatch, n_iter=3)
    w = np.moveaxis(rng.standard_normal((30, 3, 20)).astype(dtype), 1, 0)
    assert not (w[0].flags.c_contiguous or w[0].flags.f_contiguous)
    g = np.moveaxis(rng.standard_normal((30, 3, 20)).astype(dtype), 1, 0)
    y, _ = check_fast_against_core(w, g, 1, monkeypatch, n_iter=3)
    assert y.dtype == w.dtype
    w = np.asfortranarray(rng.standard_normal((3, 30, 20)).astype(dtype))
    assert w.flags.f_contiguous and not (w[0].flags.c_contiguous or w[0].flags.f_contiguous)
    for order in (1, 2):
        check_fast_against_core(w, np.asfortranarray(rng.standard_normal(w.shape).astype(dtype)), order,
                                monkeypatch, n_iter=3)


def test_blas_wrappers_refuse_what_they_cannot_pass_on():
    """The ctypes CBLAS wrapper hands raw pointers to BLAS, so it refuses (AssertionError, a bug
    in the caller) any operand that is not column-major or not of the routine's dtype, an output
    whose shape does not match the product, and a request for SYRK's lower triangle; the fused
    product refuses a strided output, and a BLAS that returns a new array instead of writing into
    the output is a bug too."""
    blas = nb._numpy_cblas()
    a = np.ones((3, 3), np.float32, order="F")
    msg = r"^CBLAS operands must be column-major of the routine's dtype$"
    with pytest.raises(AssertionError, match=msg):
        blas.sgemm(1.0, np.ones((3, 2), np.float32), a[:2], c=np.ones((3, 3), np.float32, order="F"))
    with pytest.raises(AssertionError, match=msg):
        blas.sgemm(1.0, a, a.astype(np.float64, order="F"), c=a.copy(order="F"))
    with pytest.raises(AssertionError, match=msg):
        blas.ssyrk(1.0, a, c=np.ones((3, 3), np.float32, order="C")[:, :])
    # Each operand alone: a row-major or float64 first factor, a row-major output.
    b = np.ones((4, 3), np.float32, order="F")
    for bad in (np.ones((3, 4), np.float32), np.ones((3, 4), np.float64, order="F")):
        with pytest.raises(AssertionError, match=msg):
            blas.sgemm(1.0, bad, b, c=a.copy(order="F"))
        with pytest.raises(AssertionError, match=msg):
            blas.ssyrk(1.0, bad, c=a.copy(order="F"))
    with pytest.raises(AssertionError, match=msg):
        blas.sgemm(1.0, a, a, c=np.ones((3, 3), np.float32, order="C"))
    # Shapes: an output too large (written in bounds if the check were missing), a lower triangle.
    with pytest.raises(AssertionError, match=r"^gemm shapes \(3, 3\), \(3, 3\), \(4, 3\) do not match$"):
        blas.sgemm(1.0, a, a, c=np.ones((4, 3), np.float32, order="F"))
    syrk_msg = r"^syrk: an n x n output and the upper triangle only$"
    with pytest.raises(AssertionError, match=syrk_msg):
        blas.ssyrk(1.0, a, c=np.ones((4, 3), np.float32, order="F"))
    with pytest.raises(AssertionError, match=syrk_msg):
        blas.ssyrk(1.0, a, c=a.copy(order="F"), lower=1)
    with pytest.raises(AssertionError, match=r"^the output of a fused product must be contiguous$"):
        nb._gemm(blas.sgemm, 1.0, a, a, 0.0, np.ones((3, 6), np.float32)[:, ::2])

    def copying(alpha, a, *args, c=None, **kw):
        return np.array(c, copy=True)

    with pytest.raises(AssertionError, match=r"^scipy's gemm did not write into the output in place$"):
        nb._gemm(copying, 1.0, a, a, 0.0, a.copy(order="F"))
    with pytest.raises(AssertionError, match=r"^scipy's syrk did not write into the output in place$"):
        nb._syrk(copying, a, a.copy(order="F"))


def _head(shape, dtype, fill):
    """``(buffer, m)``: a Fortran-ordered ``m`` of ``shape`` at the head of a larger buffer whose
    tail holds ``fill``, so that a wrong stride reads the tail (or writes it) instead of memory
    outside any array."""
    size = int(np.prod(shape))
    buf = np.full(size + 16, fill, dtype)
    return buf, buf[:size].reshape(shape, order="F")


def test_cblas_wrapper_takes_scipys_arguments_on_every_shape(dtype):
    """The ctypes wrapper computes what BLAS defines and SciPy's ``?gemm`` / ``?syrk`` compute
    with the same arguments, defaults included (``beta = 0``, no transposes, the upper
    triangle), on operands with sides of 1, where a leading dimension is the only stride BLAS
    uses: integer operands, so that every product is exact and equals NumPy's, each operand at
    the head of a NaN-filled buffer, the output's tail never written. ``_syrk`` fills a C- or
    Fortran-ordered output with ``A^T A``."""
    blas = nb._numpy_cblas()
    try:
        import scipy.linalg.blas as sblas
    except ImportError:
        sblas = None
    prefix = {"float32": "s", "float64": "d"}[np.dtype(dtype).name]
    rng = np.random.default_rng(12)

    def operand(shape):
        _, m = _head(shape, dtype, np.nan)
        m[...] = rng.integers(-4, 5, shape)
        return m

    def output(shape):
        buf, c = _head(shape, dtype, np.inf)
        c[...] = rng.integers(-4, 5, shape)
        return buf, c, c.astype(np.float64)

    for (m, k, n), (ta, tb) in itertools.product(itertools.product((1, 3), (1, 2), (1, 4)),
                                                 itertools.product((0, 1), (0, 1))):
        a, b = operand((k, m) if ta else (m, k)), operand((n, k) if tb else (k, n))
        product = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
        flags = {**({"trans_a": 1} if ta else {}), **({"trans_b": 1} if tb else {})}
        for beta in ({}, {"beta": -1.5}):
            buf, c, c0 = output((m, n))
            expected = 3 * product + beta.get("beta", 0.0) * c0
            if sblas is not None:
                theirs = getattr(sblas, prefix + "gemm")(3.0, a, b, c=np.asfortranarray(c0, dtype), **beta, **flags)
                np.testing.assert_array_equal(theirs, expected)
            assert getattr(blas, prefix + "gemm")(3.0, a, b, c=c, **beta, **flags) is c
            np.testing.assert_array_equal(c, expected, err_msg=f"gemm {m}x{k}x{n} trans {ta}{tb} {beta}")
            assert np.all(buf[c.size:] == np.inf), "gemm wrote beyond its output"
    for (n, k), trans in itertools.product(itertools.product((1, 3), (1, 2)), (0, 1)):
        a = operand((k, n) if trans else (n, k))
        op = (a.T if trans else a).astype(np.float64)
        upper = np.triu_indices(n)
        for beta in ({}, {"beta": -1.5}):
            buf, c, c0 = output((n, n))
            expected = c0.copy()  # SYRK writes the upper triangle only
            expected[upper] = (3 * op @ op.T + beta.get("beta", 0.0) * c0)[upper]
            kw = {**beta, **({"trans": 1} if trans else {})}
            if sblas is not None:
                theirs = getattr(sblas, prefix + "syrk")(3.0, a, c=np.asfortranarray(c0, dtype), **kw)
                np.testing.assert_array_equal(theirs, expected)
            assert getattr(blas, prefix + "syrk")(3.0, a, c=c, **kw) is c
            np.testing.assert_array_equal(c, expected, err_msg=f"syrk {n}x{k} trans {trans} {beta}")
            assert np.all(buf[c.size:] == np.inf), "syrk wrote beyond its output"
    a = rng.integers(-4, 5, (5, 3)).astype(dtype)
    for order in ("C", "F"):
        c = np.full((3, 3), np.nan, dtype, order=order)
        assert nb._syrk(getattr(blas, prefix + "syrk"), a, c) is c
        np.testing.assert_array_equal(c, a.astype(np.float64).T @ a.astype(np.float64), err_msg=order)


def test_loader_skips_a_library_that_does_not_load_or_lacks_the_symbols(monkeypatch):
    """The loader tries the OpenBLAS candidates of ``numpy.libs`` in turn: one that fails to
    load (``OSError``) or lacks the CBLAS symbols (``AttributeError``) is skipped and the next
    one is used."""
    import ctypes
    import glob

    if nb._numpy_cblas() is None:
        pytest.skip("this NumPy bundles no OpenBLAS")
    real_glob, real_cdll, tried = glob.glob, ctypes.CDLL, []

    def cdll(path):
        tried.append(path)
        if len(tried) == 1:
            raise OSError(f"{path}: cannot open shared object file")
        return types.SimpleNamespace() if len(tried) == 2 else real_cdll(path)

    with monkeypatch.context() as m:
        m.setattr(glob, "glob", lambda pattern: real_glob(pattern) * 3)
        m.setattr(ctypes, "CDLL", cdll)
        loaded = nb._load_numpy_cblas()
    assert len(tried) == 3 and isinstance(loaded, nb._CBlas)
    a = np.arange(6.0).reshape(3, 2, order="F")
    c = np.zeros((2, 2), order="F")
    np.testing.assert_array_equal(loaded.dgemm(1.0, a, a, c=c, trans_a=1), a.T @ a)


def test_workspace_is_allocated_once(dtype):
    """[BJ-11] a :class:`BjorckSteps` holds its workspace across steps: with ``reuse=True``, once
    the first calls have allocated it and the two result buffers, a step and a reverse step of
    order 3 allocate no ``N x N`` array (tracemalloc sees NumPy's allocations; a ufunc over
    operands of mixed layouts takes an iteration buffer of at most 8192 entries, a third of
    ``N x N`` here)."""
    rng = np.random.default_rng(13)
    n = 160
    a = rng.standard_normal((176, n)).astype(dtype) / n
    g = rng.standard_normal((176, n)).astype(dtype)
    fast = nb.steps(a, bj.bjorck_coefficients(3), reuse=True)
    x = fast.gram(a)
    for _ in range(2):
        fast.step(a, x)
        fast.step_vjp(a, x, g)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fast.step(a, x)
        fast.step_vjp(a, x, g)
        grown = tracemalloc.get_traced_memory()[1] - before
    finally:
        if started:
            tracemalloc.stop()
    assert grown < n * n * np.dtype(dtype).itemsize, f"{grown} bytes allocated by warm steps"


def test_stacks_of_different_lengths_are_refused_like_the_core(dtype):
    """``step`` and ``step_vjp`` on operands stacked differently (three matrices against two)
    raise ValueError, as the core's products do, instead of leaving a result matrix unwritten."""
    rng = np.random.default_rng(14)
    coeffs = bj.bjorck_coefficients(2)
    a = rng.standard_normal((3, 20, 10)).astype(dtype) / 10
    g = rng.standard_normal((3, 20, 10)).astype(dtype)
    fast = nb.steps(a, coeffs, reuse=False)
    x = fast.gram(a)
    with pytest.raises(ValueError):
        _core_step(a, x[:2], coeffs)
    with pytest.raises(ValueError):
        fast.step(a, x[:2])
    with pytest.raises(ValueError):
        _core_vjp(a, x, g[:2], coeffs)
    with pytest.raises(ValueError):
        fast.step_vjp(a, x, g[:2])


def test_results_keep_the_layout_of_each_matrix():
    """A result shaped like ``a`` (``_like``) has ``a``'s shape, dtype and layout matrix by
    matrix, so that copying ``a`` into it is a plain memory copy: C- and Fortran-ordered
    matrices, a stack of C-ordered ones, a stack of Fortran-ordered ones (the tall view of a
    wide stack); C order where ``a``'s matrices are neither (a Fortran-ordered stack, a stack
    axis between the matrix axes)."""
    base = np.zeros((3, 5, 4), np.float32)
    cases = [(base[0], "C"), (np.asfortranarray(base[0]), "F"), (base, "C"), (np.zeros((3, 4, 5), np.float32).mT, "F"),
             (np.asfortranarray(base), "C"), (np.moveaxis(np.zeros((5, 3, 4), np.float32), 1, 0), "C")]
    for a, layout in cases:
        out = nb._like(a)
        assert out.shape == a.shape and out.dtype == a.dtype
        for m in [out] if out.ndim == 2 else list(out):
            assert m.flags.c_contiguous if layout == "C" else m.flags.f_contiguous, (a.strides, out.strides, layout)
