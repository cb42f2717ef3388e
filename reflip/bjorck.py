"""Björck–Bowie orthonormalization with hand-written VJP and JVP (claim C5).

The iteration of Björck & Bowie (1971), *An iterative algorithm for computing the best estimate
of an orthogonal matrix* (SIAM J. Numer. Anal. 8(2)), drives a matrix ``A`` to the orthonormal
factor of its polar decomposition. With ``Q = I - A^T A`` it multiplies ``A`` by the series of
``(I - Q)^(-1/2)`` truncated after ``Q^p`` [BJ-1]::

    A_{k+1} = A_k (c_0 I + c_1 Q_k + ... + c_p Q_k^p),   c_j = binom(2j, j) / 4^j   [BJ-2]

evaluated as a polynomial in the Gram matrix ``X = A^T A`` by Horner's rule. The map acts on each
singular value through the scalar polynomial ``phi(s) = s P(s^2)`` and leaves the singular
vectors alone [BJ-3], so ``B(W^T) = B(W)^T`` and ``B(P W R) = P B(W) R`` [BJ-4]. It converges to
``U V^T`` (``W = U S V^T``) from every singular value in ``(0, r)``, ``r = sqrt(3)`` for order 1
[BJ-5]: the input must be scaled into that basin first, and only the Frobenius scaling is
guaranteed to do so [BJ-6]. Rectangular matrices go to the semi-orthonormal polar factor; the
iteration always runs on the smaller Gram matrix (a wide matrix is transposed, iterated and
transposed back).

Two backward passes [BJ-8, BJ-9]: ``"unrolled"`` is the exact VJP of the computed iterations,
scaling step included (optionally checkpointed, storing only the input); ``"implicit"`` is the
VJP of the limit ``U V^T`` itself, from a Sylvester equation solved in the eigenbasis of the
symmetric polar factor ``H = Y^T W``, valid once the forward has converged. The JVP follows the
same choice.

Types (``w`` is ``(..., m, n)``; internally the iteration runs on the tall orientation
``(..., M, N)``, ``M >= N``)::

    bjorck_fwd :: (w[..., m, n], **params) -> (y[..., m, n], BjorckResiduals)
    bjorck_bwd :: (BjorckResiduals, y_bar[..., m, n]) -> w_bar[..., m, n]
    bjorck_jvp :: (BjorckResiduals, w_dot[..., m, n]) -> y_dot[..., m, n]

Host synchronisation: ``check_finite``, ``tol`` (every iteration), the convergence check
(unless ``on_nonconvergence="ignore"``), the basin certificate of ``scaling="none"`` /
``"sqrt_mn"``, the convergence flag of :class:`BjorckInfo` and the finiteness and singularity
checks of the implicit backward each read one scalar back from the device.
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from . import _fast
from ._backend import get_namespace, safe_divisor
from ._registry import Primitive, register
from ._validate import MAX_ITERATIONS, check_array, check_bool, check_choice, check_cotangent, check_int, check_real
from .tolerances import eps

__all__ = [
    "BjorckConvergenceError",
    "BjorckConvergenceWarning",
    "BjorckInfo",
    "BjorckResiduals",
    "basin_radius",
    "bjorck",
    "bjorck_bwd",
    "bjorck_coefficients",
    "bjorck_fwd",
    "bjorck_jvp",
]

SCALINGS = ("frobenius", "sqrt_mn", "none")
BACKWARDS = ("unrolled", "implicit")
ON_NONCONVERGENCE = ("warn", "raise", "ignore")
PRECISIONS = ("default", "tf32-mixed")
# Float32 iterations closing a "tf32-mixed" run. TF32 alone stalls far above the float32 floor
# (its inputs are rounded to 10 bits); the quadratic convergence [BJ-5] squares the residual at
# every float32 step, so a few steps reach the floor while the TF32 steps do the bulk of the
# work. The count trades speed for residual; 3 is where the GPU benchmark met "same residual,
# >= 3x faster" (measurements: benchmarks/README.md, the Björck 4096x4096 float32 table).
TF32_POLISH = 3
# sum |a_i| of the expanded polynomial bounds how much it amplifies rounding errors near X = I;
# it roughly doubles with every order (110 at order 8), while the order of convergence only
# grows by one: the benchmarks show orders above 4 never pay for their extra GEMMs [BJ-2].
MAX_ORDER = 8
DEFAULT_N_ITER = 25


class BjorckConvergenceWarning(RuntimeWarning):
    """The iteration did not reach ``tol``, or without ``tol`` its residual is above
    ``sqrt(N eps)`` (or the implicit backward ran on a forward that had not converged): the
    result is not orthonormal to the requested accuracy [BJ-7] [BJ-10]. Silence it with
    ``on_nonconvergence="ignore"`` where fewer iterations are intended."""


class BjorckConvergenceError(RuntimeError):
    """Raised instead of :class:`BjorckConvergenceWarning` with ``on_nonconvergence="raise"``."""


# ----------------------------------------------------------------------------------------------
# Coefficients and basin [BJ-2] [BJ-5]


@functools.lru_cache(maxsize=None)
def _exact_coefficients(order, beta):
    if order == 1:
        b = Fraction(beta)
        return (1 + b, -b)
    # c_j = binom(2j, j) / 4^j are the Taylor coefficients of (1 - q)^(-1/2); substituting
    # q = 1 - x and expanding (1 - x)^j binomially gives a_i = (-1)^i sum_{j>=i} c_j binom(j, i).
    c = [Fraction(math.comb(2 * j, j), 4**j) for j in range(order + 1)]
    return tuple((-1) ** i * sum(c[j] * math.comb(j, i) for j in range(i, order + 1))
                 for i in range(order + 1))


def bjorck_coefficients(order=1, beta=0.5):
    """Coefficients ``a_0, ..., a_p`` of ``P(X) = sum_i a_i X^i``, one Björck step being
    ``A <- A P(A^T A)`` [BJ-2].

    ``P`` is the series of ``(1 - q)^(-1/2) = sum_j binom(2j, j) / 4^j q^j`` truncated after
    ``q^p`` and rewritten in ``x = 1 - q``. Order 1 is the family ``P(x) = (1 + beta) - beta x``
    (``beta = 1/2`` is the series). Examples: order 1 ``(3/2, -1/2)``; order 2
    ``(15/8, -5/4, 3/8)``; order 3 ``(35/16, -35/16, 21/16, -5/16)``.

    Returns
    -------
    tuple of float
        ``(a_0, ..., a_p)``, exact rationals rounded once to float64.
    """
    order, beta = _check_order_beta(order, beta)
    return tuple(float(a) for a in _exact_coefficients(order, beta))


@functools.lru_cache(maxsize=None)
def _basin_radius(order, beta):
    coeffs = [float(a) for a in _exact_coefficients(order, beta)]
    poly = np.polynomial.Polynomial(coeffs)
    # [BJ-5] The basin is (0, r) with r^2 the smallest x > 1 where P(x) reaches 0 (phi(s) = 0:
    # the singular value is lost) or 1 (phi(s) = s: a repelling fixed point). x = 1 is always a
    # simple root of P - 1 (P(1) = 1, P'(1) = -beta or -1/2), so it is excluded.
    roots = [r.real for p in (poly, poly - 1) for r in p.roots()
             if abs(r.imag) <= 1e-9 * max(1.0, abs(r)) and r.real > 1 + 1e-9]
    return math.sqrt(min(roots))


def basin_radius(order=1, beta=0.5):
    """Radius ``r`` of the basin ``(0, r)``: every singular value in it converges to 1 [BJ-5].

    ``sqrt((1 + beta) / beta)`` for order 1 (``sqrt(3)`` at ``beta = 1/2``); ``sqrt(7/3)`` for
    order 2; computed from the roots of ``P`` and ``P - 1`` for every order.
    """
    order, beta = _check_order_beta(order, beta)
    return _basin_radius(order, float(beta))


# ----------------------------------------------------------------------------------------------
# Convergence report [BJ-7]


@dataclass(frozen=True)
class BjorckInfo:
    """Convergence report of one forward pass [BJ-7].

    Attributes
    ----------
    n_iter : int
        Iterations actually run (``<= n_iter`` requested; fewer when ``tol`` stopped early).
        The whole stack runs the same number of iterations.
    residual : array or None
        ``||Y^T Y - I||_F`` of every matrix of the stack (shape ``w.shape[:-2]``, on the input's
        device), computed on the smaller Gram matrix. It bounds the distance of ``Y`` to the
        semi-orthonormal matrix with the same singular vectors: ``||Y - U V^T||_F <= residual``.
        ``None`` only from :func:`bjorck` without ``return_info`` or ``tol``.
    tol : float
        The threshold ``converged`` compares with: the ``tol`` argument, or ``sqrt(eps)`` of the
        dtype when ``tol`` was ``None`` (orthonormal to half the working precision).
    early_stopping : bool
        Whether ``tol`` was given (then ``n_iter`` depends on the data).
    """

    n_iter: int
    residual: object
    tol: float
    early_stopping: bool

    @property
    def max_residual(self) -> float:
        """Largest residual over the stack (reads one scalar back from the device)."""
        if self.residual is None:
            raise ValueError("no residual was computed: call bjorck(..., return_info=True) or bjorck_fwd")
        xp = get_namespace(self.residual)
        return float(xp.max(self.residual))

    @property
    def converged(self) -> bool:
        """``max_residual <= tol`` (``False`` when the residual is NaN)."""
        return self.max_residual <= self.tol


class _Config(NamedTuple):
    """The validated parameters of one call (built by :func:`_make_config`, by keyword)."""

    coeffs: tuple
    order: int
    beta: float
    n_iter: int
    tol: float | None
    scaling: str
    backward: str
    checkpoint: bool
    on_nonconvergence: str
    transposed: bool
    precision: str = "default"
    # Residual above which a run without tol is reported [BJ-10]; see _warn_above.
    warn_above: float = math.inf


class BjorckResiduals(NamedTuple):
    """What the backward pass and the JVP need, in the tall orientation (``M >= N``).

    Attributes
    ----------
    w : array
        The input (transposed when wide: ``w.mT``, a view). Kept by reference: modifying the
        caller's array afterwards changes the residuals.
    scale : array
        The scaling divisor ``c`` of every matrix, shape ``(..., 1, 1)`` [BJ-6].
    iterates : tuple of (A_k, X_k) or None
        Every iterate that was multiplied and its Gram matrix, ``k < info.n_iter``; ``None`` with
        ``checkpoint=True`` (they are recomputed from ``w``) or ``backward="implicit"``.
    y : array
        The output, tall orientation.
    config : _Config
        The validated parameters.
    info : BjorckInfo
        The convergence report [BJ-7].
    """

    w: object
    scale: object
    iterates: tuple | None
    y: object
    config: _Config
    info: BjorckInfo

    @property
    def shape(self):
        """Shape of the input and output in the caller's orientation, which every cotangent and
        tangent must have (``w`` is stored tall: transposed back for a wide input)."""
        shape = tuple(self.w.shape)
        return (*shape[:-2], shape[-1], shape[-2]) if self.config.transposed else shape


# ----------------------------------------------------------------------------------------------
# Validation


def _check_order_beta(order, beta):
    order = check_int(order, "order", minimum=1)
    if order > MAX_ORDER:
        raise ValueError(f"order must be <= {MAX_ORDER} (higher orders amplify rounding errors by "
                         f"sum |a_i| > 100 and never save GEMMs), got {order}")
    beta = check_real(beta, "beta")
    if order == 1:
        # [BJ-5] 0 < beta <= 1/2 keeps phi monotone on (0, 1]: every singular value there rises
        # to 1 without overshoot, which is what makes the Frobenius scaling a guarantee.
        # beta = 1/2 is the only quadratically convergent choice; beta > 1/2 overshoots and
        # beta >= 1 does not converge at all (phi'(1) = 1 - 2 beta <= -1).
        if not 0.0 < beta <= 0.5:
            raise ValueError(f"beta must satisfy 0 < beta <= 0.5 for order 1, got {beta}")
    elif beta != 0.5:
        raise ValueError(f"beta applies to order 1 only (order {order} uses the series "
                         f"coefficients); leave beta=0.5, got beta={beta}")
    return order, beta


def _make_config(w, xp, *, order, beta, n_iter, tol, scaling, backward, checkpoint,
                 on_nonconvergence, check_finite, precision="default"):
    """Validate every argument of :func:`bjorck_fwd` (through :mod:`reflip._validate`) and
    return the :class:`_Config`."""
    check_array(w, xp, "w", min_ndim=2, what=" (..., m, n)")
    order, beta = _check_order_beta(order, beta)
    # [BJ-6] a singular value s needs about log_1.5(||W||_F / s) + 5 order-1 steps: even the
    # smallest positive float64 needs fewer than MAX_ITERATIONS.
    n_iter = check_int(n_iter, "n_iter", minimum=0, maximum=MAX_ITERATIONS)
    tol = check_tol(tol)
    scaling = check_choice(scaling, "scaling", SCALINGS)
    backward = check_choice(backward, "backward", BACKWARDS)
    on_nonconvergence = check_choice(on_nonconvergence, "on_nonconvergence", ON_NONCONVERGENCE)
    checkpoint = check_bool(checkpoint, "checkpoint")
    _check_precision(precision, w, xp, tol)
    if check_bool(check_finite, "check_finite") and not bool(xp.all(xp.isfinite(w))):
        raise ValueError("w must be finite (it contains NaN or inf); pass check_finite=False to "
                         "skip this check and let NaN propagate")
    return _Config(coeffs=bjorck_coefficients(order, beta), order=order, beta=beta, n_iter=n_iter,
                   tol=tol, scaling=scaling, backward=backward, checkpoint=checkpoint,
                   on_nonconvergence=on_nonconvergence, transposed=w.shape[-2] < w.shape[-1],
                   precision=precision, warn_above=_warn_above(min(w.shape[-2:]), w.dtype))


def _warn_above(n, dtype):
    """``sqrt(N eps)``: the residual ``||Y^T Y - I||_F`` above which a run without ``tol`` is
    reported as not converged [BJ-10].

    Below it the result is within one step of the rounding floor of ``fl(Y^T Y)`` (one order-1
    step maps a residual ``rho`` to at most ``3/4 rho^2 + O(rho^3)``, and the floor is about
    ``0.1 N eps``), so a converged result never warns, at any size that fits in memory; above
    it ``||Y||_2 <= sqrt(1 + rho)`` [BJ-7] no longer certifies the Lipschitz bound to half the
    working precision."""
    return math.sqrt(n * eps(dtype))


def _check_precision(precision, w, xp, tol):
    check_choice(precision, "precision", PRECISIONS)
    if precision == "default":
        return
    from array_api_compat import is_cupy_namespace

    if not (is_cupy_namespace(xp) and w.dtype == xp.float32):
        raise ValueError(f"precision={precision!r} needs a float32 CuPy array (TF32 is a GPU "
                         f"tensor-core mode), got a {w.dtype} array of {xp.__name__}; use "
                         f"precision='default'")
    if tol is not None:
        raise ValueError(f"precision={precision!r} runs a fixed schedule (the last {TF32_POLISH} of "
                         f"n_iter iterations in float32) and does not take tol; got tol={tol}")


def _precision(cfg, k, xp, dtype):
    """Context of the products of iteration ``k``: TF32 before the float32 polishing steps of
    ``"tf32-mixed"``, the default otherwise. A function of ``k`` alone, so that recomputed
    iterates (checkpointing, JVP) are the forward's bit for bit."""
    tf32 = cfg.precision == "tf32-mixed" and k < cfg.n_iter - TF32_POLISH
    return _fast.matmul_precision(xp, dtype, "tf32" if tf32 else "default")


def _gram_bound(x, xp):
    """``min(||X||_F, ||X||_inf) >= lambda_max(X)`` for symmetric ``X``, per matrix."""
    return xp.minimum(xp.linalg.matrix_norm(x, ord="fro"), xp.max(xp.sum(xp.abs(x), axis=-1), axis=-1))


def _certify_basin(a0, cfg, xp):
    """[BJ-6] Refuse ``scaling="none"``/``"sqrt_mn"`` unless every singular value of the scaled
    input is provably below the basin radius ``r``.

    ``sigma_max^2 = lambda_max(X) <= min(||X||_F, ||X||_inf)`` for ``X = A^T A``, and, applied to
    ``X^k`` (``lambda_max(X^k) = lambda_max(X)^k``), ``lambda_max(X) <= ||X^k||^(1/k)``, which
    tends to ``lambda_max(X)`` as ``k`` grows: up to three squarings are tried (``k = 8``: within
    a factor ``N^(1/16)`` of ``lambda_max``, 1.3 at ``N = 4096``) before refusing. ``||W||_F``
    alone would refuse every orthonormal matrix with more than 3 columns (``||Q||_F = sqrt(N)``);
    ``||X||_inf`` (Gershgorin) is exact for orthonormal ``A``.
    """
    x = a0.mT @ a0
    n = x.shape[-1]
    r2 = basin_radius(cfg.order, cfg.beta) ** 2
    b = safe_divisor(_gram_bound(x, xp), xp)  # 1 for a zero matrix
    y = x / b[..., None, None]  # entries <= 1: the powers can neither overflow nor lose the scale
    power = 1
    for _ in range(4):
        bound = b * _gram_bound(y, xp) ** (1.0 / power)
        # Each product adds a relative error ~ N eps to a PSD power (whose norm is lambda^k).
        worst = float(xp.max(bound)) * (1.0 + 4.0 * power * n * eps(x.dtype))
        if worst < r2:
            return
        y, power = y @ y, 2 * power
    r = math.sqrt(r2)
    raise ValueError(
        f"scaling={cfg.scaling!r}: cannot certify that every singular value of the scaled w lies in "
        f"the basin (0, {r:.6g}) of order {cfg.order} (upper bound on sigma_max: {math.sqrt(worst):.6g}); "
        f"outside it the iteration converges to a wrong orthonormal matrix or diverges. Use "
        f"scaling='frobenius' (always inside) or scale w down first")


# ----------------------------------------------------------------------------------------------
# Core (array API standard, xp passed down)


def _tall(w, transposed):
    return w.mT if transposed else w


def _scale(w, scaling, xp):
    """``(A_0, c)`` with ``A_0 = w / c`` [BJ-6]."""
    if scaling == "frobenius":
        # ||w||_F computed as m ||w / m||_F with m = max |w_ij|: the squares can neither
        # overflow nor all underflow. A zero matrix gets c = 1 (it stays zero, [BJ-3]).
        big = safe_divisor(xp.max(xp.abs(w), axis=(-2, -1), keepdims=True), xp)
        unit = w / big
        norm = safe_divisor(xp.linalg.matrix_norm(unit, ord="fro", keepdims=True), xp)
        return unit / norm, big * norm
    c = math.sqrt(w.shape[-2] * w.shape[-1]) if scaling == "sqrt_mn" else 1.0
    a0 = w / c if c != 1.0 else w
    return a0, xp.full((*w.shape[:-2], 1, 1), c, dtype=w.dtype)


def _scaled_eyes(coeffs, a, xp):
    """``[a_0 I, ..., a_{p-1} I]`` for the ``N x N`` Gram matrices of ``a`` (``M x N``): built
    once per call rather than once per step and coefficient. Allocating them is a visible share
    of a step only for small ``N``, where a step is a few microseconds; re-measure with
    ``benchmarks/bench_bjorck.py`` (how to run it: benchmarks/README.md)."""
    eye = xp.eye(a.shape[-1], dtype=a.dtype)
    return [c * eye for c in coeffs[:-1]]


def _horner(x, coeffs, eyes):
    """``[R_{p-1}, ..., R_0]`` with ``R_{p-1} = a_{p-1} I + a_p X``, ``R_i = a_i I + X R_{i+1}``;
    ``R_0 = P(X)`` [BJ-1]; ``eyes`` from :func:`_scaled_eyes`. Order ``p`` costs ``p - 1``
    products of ``N x N`` matrices."""
    p = len(coeffs) - 1
    rs = [eyes[p - 1] + coeffs[p] * x]
    for i in range(p - 2, -1, -1):
        rs.append(eyes[i] + x @ rs[-1])
    return rs


def _step(a, x, coeffs, eyes):
    """One Björck step ``A P(X)``, ``X = A^T A`` [BJ-1]."""
    return a @ _horner(x, coeffs, eyes)[-1]


def _residual(x, xp):
    return xp.linalg.matrix_norm(x - xp.eye(x.shape[-1], dtype=x.dtype), ord="fro")


def _iterate(a, cfg, xp, *, keep, report):
    """Run the iteration from ``a = A_0``; return ``(A_K, [(A_k, X_k)] or None, K, residual)``.

    With ``tol`` the stopping test reads ``max ||X_k - I||_F`` back from the device at every
    iteration [BJ-7]; the Gram matrix it needs is the one the step uses anyway.
    """
    pairs = [] if keep else None
    residual = None
    eyes = _scaled_eyes(cfg.coeffs, a, xp)
    # [BJ-11] NumPy: the products fused with BLAS alpha/beta (None elsewhere: the core's own).
    fast = _fast.bjorck_steps(a, cfg.coeffs, cfg.precision, xp, reuse=not keep)
    # Bounded, not `while True`: every pass but the last ends with a step, and the last (k ==
    # n_iter) always breaks; a miscounted step then ends the loop instead of running forever.
    for k in range(cfg.n_iter + 1):
        if k == cfg.n_iter and not report and cfg.tol is None:
            break
        with _precision(cfg, k, xp, a.dtype):
            x = fast.gram(a) if fast else a.mT @ a
        if cfg.tol is not None or k == cfg.n_iter:
            residual = _residual(x, xp)
            if cfg.tol is not None and float(xp.max(residual)) <= cfg.tol:
                break
        if k == cfg.n_iter:
            break
        if keep:
            pairs.append((a, x))
        with _precision(cfg, k, xp, a.dtype):
            a = fast.step(a, x) if fast else _step(a, x, cfg.coeffs, eyes)
    return a, pairs, k, residual


def _bjorck_fwd(w, cfg, xp, *, keep=True, report=True):
    """Core forward on a validated config (no basin certificate: that is validation)."""
    wt = _tall(w, cfg.transposed)
    a0, scale = _scale(wt, cfg.scaling, xp)
    keep = keep and cfg.backward == "unrolled" and not cfg.checkpoint
    y, pairs, k, residual = _iterate(a0, cfg, xp, keep=keep, report=report)
    dtype_tol = math.sqrt(eps(w.dtype))
    info = BjorckInfo(k, residual, cfg.tol if cfg.tol is not None else dtype_tol, cfg.tol is not None)
    res = BjorckResiduals(wt, scale, tuple(pairs) if pairs is not None else None, y, cfg, info)
    return _tall(y, cfg.transposed), res


def _recomputed_pairs(res, xp):
    """``[(A_k, X_k)]`` for ``k < K`` in REVERSE order, from the residuals or recomputed from
    ``w`` by sqrt-checkpointing [BJ-8]: one pass stores every ``L``-th iterate
    (``L = ceil(sqrt(K))``), then each segment is recomputed when the backward reaches it. Peak
    memory ``O(sqrt(K) M N)``, two extra forward passes (one places the checkpoints, one
    recomputes the segments). The recomputation runs the same operations on the same arrays, so
    the iterates are the forward's, bit for bit."""
    if res.iterates is not None:
        yield from reversed(res.iterates)
        return
    cfg, k_run = res.config, res.info.n_iter
    seg = max(1, math.isqrt(max(k_run - 1, 0)) + 1)  # ceil(sqrt(K))
    a, _ = _scale(res.w, cfg.scaling, xp)
    eyes = _scaled_eyes(cfg.coeffs, a, xp)
    fast = _fast.bjorck_steps(a, cfg.coeffs, cfg.precision, xp)  # the forward's products [BJ-11]
    starts = [a]
    for k in range(1, ((k_run - 1) // seg) * seg + 1 if k_run else 0):
        with _precision(cfg, k - 1, xp, a.dtype):
            a = fast.step(a, fast.gram(a)) if fast else _step(a, a.mT @ a, cfg.coeffs, eyes)
        if k % seg == 0:
            starts.append(a)
    for s in range(len(starts) - 1, -1, -1):
        a, pairs = starts[s], []
        stop = min(k_run, (s + 1) * seg)
        for k in range(s * seg, stop):
            with _precision(cfg, k, xp, a.dtype):
                x = fast.gram(a) if fast else a.mT @ a
                pairs.append((a, x))
                if k + 1 < stop:
                    a = fast.step(a, x) if fast else _step(a, x, cfg.coeffs, eyes)
        yield from reversed(pairs)


def _forward_pairs(res, xp):
    """``[(A_k, X_k)]`` for ``k < K`` in forward order (stored or recomputed on the fly)."""
    if res.iterates is not None:
        yield from res.iterates
        return
    a, _ = _scale(res.w, res.config.scaling, xp)
    eyes = _scaled_eyes(res.config.coeffs, a, xp)
    fast = _fast.bjorck_steps(a, res.config.coeffs, res.config.precision, xp)  # [BJ-11]
    for k in range(res.info.n_iter):
        with _precision(res.config, k, xp, a.dtype):
            x = fast.gram(a) if fast else a.mT @ a
        yield a, x
        if k + 1 < res.info.n_iter:
            with _precision(res.config, k, xp, a.dtype):
                a = fast.step(a, x) if fast else _step(a, x, res.config.coeffs, eyes)


def _step_vjp(a, x, a_bar_next, coeffs, eyes):
    """[BJ-8] VJP of ``A -> A P(A^T A)`` at ``A``: ``A_bar = A_next_bar R_0^T + A (X_bar + X_bar^T)``
    with ``R_bar_0 = A^T A_next_bar`` pulled back through Horner's rule to ``X_bar``."""
    p = len(coeffs) - 1
    rs = _horner(x, coeffs, eyes)  # [R_{p-1}, ..., R_0]
    a_bar = a_bar_next @ rs[-1].mT
    r_bar = a.mT @ a_bar_next
    x_bar = None
    # R_i = a_i I + X R_{i+1}: R_bar_i contributes R_bar_i R_{i+1}^T to X_bar and X^T R_bar_i
    # to R_bar_{i+1}; rs[-1 - i] is R_i.
    for i in range(p - 1):
        term = r_bar @ rs[-2 - i].mT
        x_bar = term if x_bar is None else x_bar + term
        r_bar = x.mT @ r_bar
    # R_{p-1} = a_{p-1} I + a_p X.
    x_bar = coeffs[p] * r_bar if x_bar is None else x_bar + coeffs[p] * r_bar
    return a_bar + a @ (x_bar + x_bar.mT)


def _step_jvp(a, x, a_dot, coeffs, eyes):
    """[BJ-8] JVP of one step: ``A_dot P(X) + A P'(X)[X_dot]``, ``X_dot = A_dot^T A + A^T A_dot``."""
    p = len(coeffs) - 1
    rs = _horner(x, coeffs, eyes)
    x_dot = a_dot.mT @ a + a.mT @ a_dot
    r_dot = coeffs[p] * x_dot
    for i in range(p - 2, -1, -1):
        # d(a_i I + X R_{i+1}) = X_dot R_{i+1} + X R_dot_{i+1}; rs[p - 2 - i] is R_{i+1}.
        r_dot = x_dot @ rs[p - 2 - i] + x @ r_dot
    return a_dot @ rs[-1] + a @ r_dot


def _scale_jacobian(res, t, xp):
    """[BJ-8] Jacobian of ``A_0 = W / c`` applied to ``t``. For ``c = ||W||_F``:
    ``(t - <t, A_0> A_0) / c`` (the component along ``A_0`` is removed: the scaled matrix does
    not change along ``W``); ``t / c`` for a constant ``c``. The map is self-adjoint (a
    multiple of an orthogonal projection), so this one function is both the VJP and the JVP."""
    c = res.scale
    if res.config.scaling != "frobenius":
        return t / c
    a0, _ = _scale(res.w, "frobenius", xp)
    along = xp.sum(t * a0, axis=(-2, -1), keepdims=True)
    return (t - along * a0) / c


def _unrolled_bwd(res, y_bar, xp):
    a_bar, eyes = y_bar, None
    # [BJ-11] NumPy: the reverse steps fused with BLAS alpha/beta, their results in two
    # alternating buffers (each is read once, by the next reverse step).
    # (A cotangent of another dtype than the iterates is promoted by the core's products.)
    fast = (_fast.bjorck_steps(y_bar, res.config.coeffs, res.config.precision, xp, reuse=True)
            if y_bar.dtype == res.w.dtype else None)
    for a, x in _recomputed_pairs(res, xp):
        eyes = _scaled_eyes(res.config.coeffs, a, xp) if eyes is None else eyes
        a_bar = fast.step_vjp(a, x, a_bar) if fast else _step_vjp(a, x, a_bar, res.config.coeffs, eyes)
    return _scale_jacobian(res, a_bar, xp)


def _unrolled_jvp(res, w_dot, xp):
    a_dot, eyes = _scale_jacobian(res, w_dot, xp), None
    for a, x in _forward_pairs(res, xp):
        eyes = _scaled_eyes(res.config.coeffs, a, xp) if eyes is None else eyes
        a_dot = _step_jvp(a, x, a_dot, res.config.coeffs, eyes)
    return a_dot


def _polar_eig(res, xp):
    """``(V, s, F)`` for the implicit rules [BJ-9]: ``H = sym(Y^T W) = V diag(s) V^T`` (the
    symmetric polar factor, using the converged output ``Y``) and ``F_ij = 1 / (s_i + s_j)``
    (its diagonal multiplies the zero diagonal of a skew matrix)."""
    y, w = res.y, res.w
    h = y.mT @ w
    h = (h + h.mT) / 2
    # A non-finite w (check_finite=False) or iterates that overflowed make H non-finite: eigh
    # would fail inside LAPACK or return meaningless eigenvalues. Name the cause instead [BJ-9].
    if not bool(xp.all(xp.isfinite(h))):
        raise ValueError(
            "backward='implicit' cannot differentiate here: the forward's w or its output holds NaN "
            "or inf (bjorck_fwd ran with check_finite=False on a non-finite w, or its iterates "
            "overflowed), so the polar factor and its derivative are undefined. Pass a finite w")
    s, v = xp.linalg.eigh(h)
    n = s.shape[-1]
    # The Sylvester equation is singular only where two singular values sum to 0, but the polar
    # factor is already discontinuous at any singular W (square: the sign of det(W) flips the
    # last column; strictly tall: the complement term divides by s), so every zero singular
    # value is refused; "zero" means below the eigenvalue error of H, 2 N eps sigma_max. The
    # standard leaves eigh's eigenvalue order unspecified: take min and max explicitly.
    smin, smax = xp.min(s, axis=-1), xp.max(xp.abs(s), axis=-1)
    margin = float(xp.min(smin - 2 * n * eps(w.dtype) * smax))
    if not margin > 0:
        raise ValueError(
            "backward='implicit' is singular here: the polar factor U V^T is not differentiable at a "
            f"rank-deficient w (smallest singular value found: {float(xp.min(smin)):.3g}). Use "
            "backward='unrolled' (the derivative of the computed iterations)")
    _warn_if_not_converged(res)
    return v, s, 1.0 / (s[..., :, None] + s[..., None, :])


def _warn_if_not_converged(res):
    if not res.info.converged:
        warnings.warn(
            f"backward='implicit' differentiates the limit U V^T, but the forward stopped at residual "
            f"||Y^T Y - I||_F = {res.info.max_residual:.3g} > {res.info.tol:.3g}: the gradient is not "
            f"accurate. Run more iterations or use backward='unrolled'",
            BjorckConvergenceWarning, stacklevel=6)  # caller -> *_bwd/_jvp -> derivative -> ... -> here


def _implicit_jacobian(res, t, xp):
    """[BJ-9] Derivative of the polar factor applied to ``t``:
    ``U [F o (G - G^T)] V^T + (I - Y Y^T) t V diag(1/s) V^T`` with ``U = Y V``,
    ``G = U^T t V``; the second term only for strictly tall ``W``. The map is self-adjoint
    (proofs/bjorck.md, [BJ-9]), so this one function is both the VJP (``t = Y_bar``) and the
    JVP (``t = W_dot``)."""
    v, s, f = _polar_eig(res, xp)
    y = res.y
    u = y @ v
    g = u.mT @ t @ v
    out = u @ (f * (g - g.mT)) @ v.mT
    if y.shape[-2] > y.shape[-1]:
        comp = t - y @ (y.mT @ t)
        out = out + comp @ ((v / s[..., None, :]) @ v.mT)
    return out


# ----------------------------------------------------------------------------------------------
# Public layer


def check_tol(tol):
    """``tol`` of an orthonormalizing iteration: ``None`` or ``0 < tol < 1`` [BJ-7].

    ``||Y^T Y - I||_F < 1`` is what guarantees full rank (``|s^2 - 1| < 1`` for every singular
    value ``s``): a larger tolerance would accept a zero singular value, i.e. no orthonormality.
    """
    tol = check_real(tol, "tol", minimum=0.0, strict=True, allow_none=True)
    if tol is not None and tol >= 1:
        raise ValueError(f"tol must be < 1 (a residual ||Y^T Y - I||_F >= 1 allows zero singular "
                         f"values), got {tol}")
    return tol


_BJORCK_ADVICE = ("zero singular values never converge, a singular value s needs ~log_1.5(||w||_F / s) + 5 "
                  "iterations at order 1")


def _report_convergence(info, cfg, stacklevel, *, name="Björck iteration", advice=_BJORCK_ADVICE):
    """Warn (or raise) when the run is not converged [BJ-7] [BJ-10]: the residual is above
    ``tol``, or above ``cfg.warn_above`` without ``tol`` (a NaN residual counts as not
    converged). ``on_nonconvergence="ignore"`` skips the check. ``stacklevel`` is that of the
    public function, so that the warning points at the user's call (Python then shows it once
    per call site). ``name`` and ``advice`` (why it may not converge) are the iteration's: the
    polar iteration [PO-1] reports through the same rule."""
    if cfg.on_nonconvergence == "ignore" or info.residual is None:
        return
    residual = info.max_residual
    if cfg.tol is not None:
        if info.converged:
            return
        msg = (f"{name} did not reach tol={cfg.tol:g} in n_iter={cfg.n_iter} iterations: "
               f"||Y^T Y - I||_F = {residual:.3g}. The result is not orthonormal ({advice}); "
               f"increase n_iter or loosen tol")
    else:
        if residual <= cfg.warn_above:
            return
        msg = (f"{name} did not converge in n_iter={cfg.n_iter} iterations: "
               f"||Y^T Y - I||_F = {residual:.3g} > {cfg.warn_above:.3g} = sqrt(N eps) [BJ-10]. The "
               f"result is not orthonormal ({advice}); increase n_iter, or pass "
               f"on_nonconvergence='ignore' if fewer iterations are intended (training)")
    if cfg.on_nonconvergence == "raise":
        raise BjorckConvergenceError(msg)
    warnings.warn(msg, BjorckConvergenceWarning, stacklevel=stacklevel + 1)


def _validated(w, *, order, beta, n_iter, tol, scaling, backward, checkpoint, on_nonconvergence,
               check_finite, precision):
    """Public-layer validation of :func:`bjorck_fwd`'s arguments (all by keyword): returns
    ``(xp, cfg)``, after the basin certificate of the scalings other than Frobenius [BJ-6]."""
    xp = get_namespace(w=w)
    cfg = _make_config(w, xp, order=order, beta=beta, n_iter=n_iter, tol=tol, scaling=scaling,
                       backward=backward, checkpoint=checkpoint, on_nonconvergence=on_nonconvergence,
                       check_finite=check_finite, precision=precision)
    if cfg.scaling != "frobenius" and cfg.n_iter > 0:
        _certify_basin(_scale(_tall(w, cfg.transposed), cfg.scaling, xp)[0], cfg, xp)
    return xp, cfg


def bjorck_fwd(w, *, order=1, beta=0.5, n_iter=DEFAULT_N_ITER, tol=None, scaling="frobenius",
               backward="unrolled", checkpoint=False, on_nonconvergence="warn", check_finite=True,
               precision="default"):
    """Björck orthonormalization, forward pass returning the residuals of the backward pass.

    .. math::

        A_0 = W / c, \\qquad A_{k+1} = A_k \\sum_{i=0}^{p} a_i (A_k^T A_k)^i,
        \\qquad Y = A_K \\;\\to\\; U V^T \\text{ for } W = U S V^T

    (Björck & Bowie 1971; Anil, Lucas & Grosse 2019, claim C5). The coefficients ``a_i`` are
    those of the series of ``(1 - q)^(-1/2)`` truncated after ``q^p``, expanded in ``X = 1 - q``
    [BJ-1, BJ-2]; for a wide ``W`` (``m < n``) the iteration runs on ``W^T`` and the result is
    transposed back, so the Gram matrix is always the smaller one [BJ-4].

    Parameters
    ----------
    w : array, real floating, shape (..., m, n), finite, non-empty
        Matrices to orthonormalize (a stack over the leading axes); never modified.
    order : int, default 1
        ``p``, 1 <= p <= 8: the series is truncated after ``Q^p`` and converges with order
        ``p + 1``; one iteration costs ``p + 1`` matrix products (``2 M N^2 + (p-1) N^3``).
    beta : float, default 0.5
        Order 1 only: the step ``(1 + beta) A - beta A A^T A``, ``0 < beta <= 1/2``
        (``1/2`` is the series and the only quadratically convergent choice; smaller values
        converge linearly with rate ``1 - 2 beta``) [BJ-5].
    n_iter : int, default 25
        Number of iterations (``0 <= n_iter <= MAX_ITERATIONS = 10_000``; ``0`` returns the
        scaled input), or the maximum with ``tol``. Without ``tol`` it is fixed: the work is
        data independent, the residual is reported in ``residuals.info``, and a result with
        residual above ``sqrt(N eps)`` is reported as not converged (see
        ``on_nonconvergence``) [BJ-10]. 25 order-1 steps bring every singular value above
        ``~1e-3 ||W||_F`` within ``1e-6`` of 1 (a singular value ``s`` needs about
        ``log_1.5(||W||_F / s) + 5`` steps) [BJ-5, BJ-6].
    tol : float or None, default None
        Stop as soon as ``max ||A_k^T A_k - I||_F <= tol`` over the stack (one device-to-host
        read per iteration). If it is not reached in ``n_iter`` iterations a
        :class:`BjorckConvergenceWarning` is issued (or :class:`BjorckConvergenceError` raised,
        see ``on_nonconvergence``) [BJ-7].
    scaling : {"frobenius", "sqrt_mn", "none"}, default "frobenius"
        Divisor ``c`` bringing the singular values into the basin [BJ-5, BJ-6].
        ``"frobenius"``: ``c = ||W||_F >= sigma_max``, guaranteed (all singular values in
        ``(0, 1]``), but small singular values then need more iterations. ``"sqrt_mn"``:
        ``c = sqrt(m n)``, the paper code's heuristic, guaranteed only when every
        ``|w_ij| <= 1``. ``"none"``: ``c = 1``, for inputs already near orthonormal. The last two
        raise ``ValueError`` unless ``min(||X||_F, ||X||_inf) < r^2`` (``X = A_0^T A_0``,
        ``r = basin_radius(order, beta)``) certifies the basin; the certificate is sufficient,
        not necessary.
    backward : {"unrolled", "implicit"}, default "unrolled"
        Used by :func:`bjorck_bwd` and :func:`bjorck_jvp`. ``"unrolled"``: exact derivative of
        the computed iterations, scaling included [BJ-8]. ``"implicit"``: derivative of the
        limit ``U V^T`` [BJ-9], cheap in memory, valid once converged; singular when two singular
        values sum to 0 (or one is 0 for a non-square ``W``).
    checkpoint : bool, default False
        Unrolled only: store only ``w`` and recompute the iterates in the backward pass
        (sqrt-checkpointing: residual memory ``O(m n)`` instead of ``O(K m n)``, peak
        ``O(sqrt(K) m n)`` during the backward, which costs two extra forward passes).
        Gradients are identical, bit for bit.
    on_nonconvergence : {"warn", "raise", "ignore"}, default "warn"
        What to do when the result has not converged: with ``tol``, when ``tol`` is not
        reached; without it, when ``max ||Y^T Y - I||_F > sqrt(N eps)`` (``N = min(m, n)``,
        ``eps`` of the dtype; NaN counts as not converged) [BJ-10]. ``"warn"`` issues a
        :class:`BjorckConvergenceWarning` (shown once per call site by Python's default
        filter), ``"raise"`` raises :class:`BjorckConvergenceError`, ``"ignore"`` skips the
        check: for training code that under-iterates on purpose (the report in
        ``residuals.info`` is computed all the same). The check costs one device-to-host read;
        for :func:`bjorck` without ``tol`` also one Gram matrix, which ``"ignore"`` saves.
    check_finite : bool, default True
        Raise ``ValueError`` on NaN/inf (one device-to-host read). With ``False`` NaN propagates.
    precision : {"default", "tf32-mixed"}, default "default"
        ``"tf32-mixed"`` (float32 CuPy arrays only, without ``tol``; ``ValueError`` otherwise,
        NumPy included): the products of the first ``n_iter - TF32_POLISH`` iterations (all but
        the last 3) run on TF32 tensor cores, the last ones in float32. The iteration is
        self-correcting [BJ-5], so the float32 steps remove the TF32 rounding and the result
        reaches the float32 residual at a fraction of the cost (see benchmarks/README.md). The
        backward passes run in float32 on the iterates the forward computed (recomputed ones
        follow the same schedule, bit for bit).

    Returns
    -------
    y : array, shape (..., m, n)
        The orthonormalized matrices (``Y^T Y = I`` for tall, ``Y Y^T = I`` for wide, once
        converged). Zero singular values stay zero [BJ-3]: a rank-deficient ``W`` gives a
        partial isometry and never converges (``residual >= 1``).
    residuals : BjorckResiduals
        ``residuals.info`` is the :class:`BjorckInfo` convergence report.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (the message names the parameter and what was expected), a NaN/inf
        input, or an input outside the certified basin for ``"none"``/``"sqrt_mn"``.
    BjorckConvergenceError
        Not converged (see ``on_nonconvergence``) with ``on_nonconvergence="raise"``.

    Warns
    -----
    BjorckConvergenceWarning
        Not converged, with ``on_nonconvergence="warn"`` (the default) [BJ-10].
    """
    xp, cfg = _validated(w, order=order, beta=beta, n_iter=n_iter, tol=tol, scaling=scaling,
                         backward=backward, checkpoint=checkpoint, on_nonconvergence=on_nonconvergence,
                         check_finite=check_finite, precision=precision)
    y, res = _bjorck_fwd(w, cfg, xp)
    _report_convergence(res.info, cfg, stacklevel=2)
    return y, res


def derivative(residuals, t, name, unrolled):
    """The VJP or JVP of an orthonormalizing iteration (Björck, the polar iteration [PO-5]) on
    its residuals: ``t`` (named ``name``: ``y_bar`` or ``w_dot``) checked, taken to the tall
    orientation, mapped by the implicit Jacobian [BJ-9] (self-adjoint, so the same map for both)
    or by ``unrolled(residuals, t, xp)`` [BJ-8], and taken back."""
    xp = get_namespace(**{name: t})
    check_cotangent(name, t, residuals.shape, xp)
    t = _tall(t, residuals.config.transposed)
    if residuals.config.backward == "implicit":
        out = _implicit_jacobian(residuals, t, xp)
    else:
        out = unrolled(residuals, t, xp)
    return _tall(out, residuals.config.transposed)


def bjorck_bwd(residuals, y_bar):
    """Björck VJP ``w_bar = J^T y_bar``, by the method chosen in :func:`bjorck_fwd`.

    ``"unrolled"`` [BJ-8]: reverse pass through every iteration (one step:
    ``A_bar = A'_bar P(X)^T + A (X_bar + X_bar^T)``, ``X_bar`` from Horner's rule; order 1 gives
    ``(1 + beta) G - beta (G A^T A + A G^T A + A A^T G)``), then through the scaling:
    ``(A0_bar - <A0_bar, A_0> A_0) / ||W||_F`` for the Frobenius scaling.
    ``"implicit"`` [BJ-9]: ``U [F o (G - G^T)] V^T + (I - Y Y^T) Y_bar V S^{-1} V^T`` with
    ``G = U^T Y_bar V``, ``F_ij = 1 / (s_i + s_j)``; issues a :class:`BjorckConvergenceWarning`
    when the forward had not converged, raises ``ValueError`` where it is singular.

    Parameters
    ----------
    residuals : BjorckResiduals
        From :func:`bjorck_fwd`.
    y_bar : array, shape of the output
        Cotangent; never modified.
    """
    return derivative(residuals, y_bar, "y_bar", _unrolled_bwd)


def bjorck_jvp(residuals, w_dot):
    """Björck JVP ``y_dot = J w_dot``, the adjoint of :func:`bjorck_bwd` (same ``backward``).

    ``"unrolled"`` [BJ-8]: forward-mode through the same iterations,
    ``A'_dot = A_dot P(X) + A P'(X)[A_dot^T A + A^T A_dot]``, from
    ``A0_dot = (W_dot - <W_dot, A_0> A_0) / ||W||_F``; recomputes the iterates when they were not
    stored (memory ``O(m n)``). ``"implicit"`` [BJ-9]: ``U [F o (M - M^T)] V^T +
    (I - Y Y^T) W_dot V S^{-1} V^T``, ``M = U^T W_dot V``.
    """
    return derivative(residuals, w_dot, "w_dot", _unrolled_jvp)


def bjorck(w, *, order=1, beta=0.5, n_iter=DEFAULT_N_ITER, tol=None, scaling="frobenius",
           backward="unrolled", checkpoint=False, on_nonconvergence="warn", check_finite=True,
           precision="default", return_info=False):
    """Orthonormalize ``w`` (its polar factor ``U V^T``) by the Björck–Bowie iteration.

    Same parameters and result as :func:`bjorck_fwd` (``backward`` and ``checkpoint`` are
    accepted so that both take the same arguments, and ignored); keeps no iterates. The result
    equals ``bjorck_fwd(w, ...)[0]`` bit for bit.

    Björck & Bowie (1971); Anil, Lucas & Grosse (2019), claim C5 [BJ-1, BJ-3, BJ-5].

    Parameters
    ----------
    return_info : bool, default False
        Also return the :class:`BjorckInfo` convergence report (one extra Gram matrix when
        ``tol`` is ``None``, the one the convergence check needs anyway unless
        ``on_nonconvergence="ignore"``).

    Returns
    -------
    y : array, or (y, BjorckInfo) with ``return_info=True``.
    """
    xp, cfg = _validated(w, order=order, beta=beta, n_iter=n_iter, tol=tol, scaling=scaling,
                         backward=backward, checkpoint=checkpoint, on_nonconvergence=on_nonconvergence,
                         check_finite=check_finite, precision=precision)
    check_bool(return_info, "return_info")
    # The final residual is needed for the report and for the convergence check [BJ-10].
    report = return_info or cfg.on_nonconvergence != "ignore"
    y, res = _bjorck_fwd(w, cfg, xp, keep=False, report=report)
    _report_convergence(res.info, cfg, stacklevel=2)
    return (y, res.info) if return_info else y


BJORCK = register(
    Primitive(
        name="bjorck",
        fun=bjorck,
        fwd=bjorck_fwd,
        bwd=bjorck_bwd,
        jvp=bjorck_jvp,
        proof="BJ-1",
        second_order=False,
        strategy="reflip.testing.strategies:bjorck_cases",
        bench_inputs="reflip.testing.bench_inputs:bjorck_inputs",
    )
)
