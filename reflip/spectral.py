"""Spectral normalization by power iteration, with its VJP under two named conventions.

``W / sigma`` where ``sigma`` estimates the largest singular value ``sigma_max(W)`` by power
iteration from a persistent left vector ``u`` (Miyato et al. 2018) [PR-11]::

    v_k = W^T u_{k-1} / ||W^T u_{k-1}||,   u_k = W v_k / ||W v_k||,   k = 1..K
    sigma = ||W v_K|| = u_K^T W v_K,        y = W / sigma

Derivative conventions [PR-11] (the forward pass is the same for both):

``"constant_uv"`` (default; what ``torch.nn.utils.spectral_norm`` computes)
    ``u_K`` and ``v_K`` are constants and ``sigma = u_K^T W v_K`` is differentiated in ``W``:
    ``d sigma = u_K^T dW v_K``. When ``u_K, v_K`` are the singular vectors of a simple
    ``sigma_max``, this is the exact derivative of ``W / sigma_max(W)``; away from convergence
    it is off by a term proportional to the residual ``W^T u_K - sigma v_K``.
``"exact"``
    The exact derivative of the function computed: the K power iterations are differentiated
    (reverse mode through the stored iterates), so it agrees with finite differences of
    :func:`spectral_normalize` at any K. At convergence the two conventions agree.

Stacks ``(..., m, n)`` are normalized matrix by matrix; ``u`` has shape ``(..., m)``.

Degenerate input: when ``W^T u_0 = 0`` (``W = 0``, or ``u_0`` orthogonal to the range of
``W``) the estimate is ``sigma = 0`` and ``W`` is returned unchanged. A matrix holding NaN or
+-inf comes out NaN, and so do its derivatives; the other matrices of a stack are unaffected
[PR-13].

Types::

    spectral_normalize_fwd :: (w[..., m, n], u[..., m] | None) -> (y[..., m, n], SpectralNormResiduals)
    spectral_normalize_bwd :: (SpectralNormResiduals, y_bar[..., m, n]) -> w_bar[..., m, n]
    spectral_normalize_jvp :: (SpectralNormResiduals, w_dot[..., m, n]) -> y_dot[..., m, n]
"""
from __future__ import annotations

import math
from typing import NamedTuple

from ._backend import get_namespace, safe_divisor
from ._registry import Primitive, register
from ._validate import MAX_ITERATIONS, check_array, check_choice, check_cotangent, check_floating, check_int, check_real
from .tolerances import eps

__all__ = [
    "CONVENTIONS",
    "SpectralNormResiduals",
    "spectral_normalize",
    "spectral_normalize_fwd",
    "spectral_normalize_bwd",
    "spectral_normalize_jvp",
    "default_u",
]

CONVENTIONS = ("constant_uv", "exact")
_GOLDEN = 0.6180339887498949


class SpectralNormResiduals(NamedTuple):
    """Forward results and what the VJP/JVP need.

    ``u`` (..., m) and ``v`` (..., n): the last iterates ``u_K, v_K`` — pass ``u`` back in as
    the next call's start (persistent u). ``sigma`` (..., 1, 1): ``||W v_K||``.
    ``iterations``: K, the number of iterations run. ``trace``: ``(us, vs, a_norms,
    b_norms)``, the iterates ``u_0..u_K``, ``v_1..v_K`` and the norms ``||W^T u_{k-1}||``,
    ``||W v_k||``, kept for ``convention="exact"`` (empty otherwise). The iteration runs on
    ``W / scale`` with ``scale = max |w_ij|`` (..., 1, 1): ``w``, ``sigma`` and the norms are
    those of that scaled matrix; :attr:`sigma_max` estimates the input's largest singular value.
    """

    w: object
    sigma: object
    u: object
    v: object
    iterations: int
    convention: str
    trace: tuple
    scale: object

    @property
    def shape(self):
        """Shape of the input, which every cotangent and tangent must have."""
        return tuple(self.w.shape)

    @property
    def sigma_max(self):
        """The estimate of the input's largest singular value, shape (..., 1, 1)."""
        return self.sigma * self.scale


def default_u(m, dtype, xp, batch=()):
    """The deterministic start used when no ``u`` is given: ``u_i = 1 + frac(i phi)`` with
    ``phi = (sqrt 5 - 1) / 2``, normalized. All entries are positive and pairwise distinct, so
    it is orthogonal to no coordinate vector and to no difference of two of them (structured
    matrices' singular vectors); a generic matrix's top singular vector is orthogonal to it
    with probability 0. Pass ``u`` explicitly to control the start."""
    t = xp.arange(1, m + 1, dtype=dtype) * _GOLDEN
    u = 1.0 + (t - xp.floor(t))
    u = u / xp.linalg.vector_norm(u)
    return xp.broadcast_to(u, (*batch, m))


def _matvec(w, x, xp):
    return xp.matmul(w, x[..., None])[..., 0]


def _normalize(x, xp):
    """``(x / ||x||, ||x||)`` along the last axis, with 0 for a zero vector."""
    norm = xp.linalg.vector_norm(x, axis=-1, keepdims=True)
    return x / safe_divisor(norm, xp), norm


def _check_args(w, u, n_iter, tol, convention, xp):
    check_array(w, xp, "w", min_ndim=2, what=" (..., m, n)")
    n_iter = check_int(n_iter, "n_iter", minimum=1, maximum=MAX_ITERATIONS)
    tol = check_real(tol, "tol", minimum=0.0, allow_none=True)
    if tol is None:
        tol = math.sqrt(eps(w.dtype))
    convention = check_choice(convention, "convention", CONVENTIONS)
    if u is not None:
        check_floating(u, xp, "u")
        expected = (*w.shape[:-2], w.shape[-2])
        if tuple(u.shape) != expected:
            raise ValueError(f"u must have shape (..., m) = {expected} for w of shape {tuple(w.shape)}, "
                             f"got {tuple(u.shape)}")
        if u.dtype != w.dtype:
            raise TypeError(f"u must have w's dtype {w.dtype}, got {u.dtype}")
    return n_iter, float(tol), convention


def _spectral_fwd(w, u, n_iter, tol, convention, xp):
    if u is None:
        u = default_u(w.shape[-2], w.dtype, xp, tuple(w.shape[:-2]))
    u, _ = _normalize(u, xp)
    keep = convention == "exact"
    # Iterate on W / s, s = max |w_ij|: u_k, v_k and y are invariant under W -> c W (c > 0),
    # so this changes nothing mathematically, but squares of tiny (huge) entries no longer
    # underflow (overflow) in the norms. Since F(c W) = F(W), DF(W)[W] = 0 and the derivative
    # through s vanishes: s is a constant for both conventions [PR-11].
    # A matrix holding NaN or +-inf is zeroed here and comes out NaN below [PR-13].
    finite = xp.all(xp.isfinite(w), axis=(-2, -1), keepdims=True)
    w = xp.where(finite, w, 0.0)
    scale = safe_divisor(xp.max(xp.abs(w), axis=(-2, -1), keepdims=True), xp)  # 1 for W = 0
    w = w / scale
    us, vs, a_norms, b_norms = [u], [], [], []
    wt = w.mT
    iterations = 0
    for _ in range(n_iter):
        v, a_norm = _normalize(_matvec(wt, u, xp), xp)
        b = _matvec(w, v, xp)
        u_next, b_norm = _normalize(b, xp)
        iterations += 1
        if keep:
            us.append(u_next)
            vs.append(v)
            a_norms.append(a_norm)
            b_norms.append(b_norm)
        # Stop when every u of the stack moved by at most tol (one host sync per iteration).
        done = tol > 0 and bool(xp.all(xp.linalg.vector_norm(u_next - u, axis=-1) <= tol))
        u = u_next
        if done:
            break
    sigma = b_norm[..., None]
    y = xp.where(finite, w / safe_divisor(sigma, xp), xp.nan)
    scale = xp.where(finite, scale, xp.nan)  # NaN derivatives for those matrices too
    trace = (tuple(us), tuple(vs), tuple(a_norms), tuple(b_norms)) if keep else ()
    return y, SpectralNormResiduals(w, sigma, u, v, iterations, convention, trace, scale)


def _spectral_bwd(res, y_bar, xp):
    w, sigma = res.w, res.sigma
    # y = W / sigma: W_bar = y_bar / sigma + sigma_bar * d sigma / dW, sigma_bar = -<y_bar, W>/sigma^2.
    sigma_bar = -xp.sum(y_bar * w, axis=(-2, -1), keepdims=True) / safe_divisor(sigma * sigma, xp)
    w_bar = y_bar / safe_divisor(sigma, xp)
    if res.convention == "constant_uv":
        # d sigma = u^T dW v with u, v constants [PR-11].
        return w_bar + sigma_bar * (res.u[..., :, None] * res.v[..., None, :])
    us, vs, a_norms, b_norms = res.trace
    sigma_bar = sigma_bar[..., 0]  # (..., 1)
    # Reverse sweep through sigma = ||b_K||, u_k = b_k/||b_k||, b_k = W v_k,
    # v_k = a_k/||a_k||, a_k = W^T u_{k-1} [PR-11]. u_bar: cotangent of u_k (0 for u_K).
    u_bar = xp.zeros_like(us[-1])
    for k in range(len(vs) - 1, -1, -1):
        u_k, v_k = us[k + 1], vs[k]
        # u = b/||b||: b_bar = (I - u u^T) u_bar / ||b||; sigma = ||b_K|| adds sigma_bar u_K.
        b_bar = (u_bar - u_k * xp.sum(u_k * u_bar, axis=-1, keepdims=True)) / safe_divisor(b_norms[k], xp)
        if k == len(vs) - 1:
            b_bar = b_bar + sigma_bar * u_k
        # b = W v: W_bar += b_bar v^T, v_bar = W^T b_bar.
        w_bar = w_bar + b_bar[..., :, None] * v_k[..., None, :]
        v_bar = _matvec(w.mT, b_bar, xp)
        # v = a/||a||: a_bar = (I - v v^T) v_bar / ||a||.
        a_bar = (v_bar - v_k * xp.sum(v_k * v_bar, axis=-1, keepdims=True)) / safe_divisor(a_norms[k], xp)
        # a = W^T u_{k-1}: W_bar += u_{k-1} a_bar^T, u_bar_{k-1} = W a_bar.
        w_bar = w_bar + us[k][..., :, None] * a_bar[..., None, :]
        u_bar = _matvec(w, a_bar, xp)
    return w_bar


def _spectral_jvp(res, w_dot, xp):
    w, sigma = res.w, res.sigma
    if res.convention == "constant_uv":
        sigma_dot = xp.sum(res.u[..., :, None] * w_dot * res.v[..., None, :], axis=(-2, -1), keepdims=True)
    else:
        us, vs, a_norms, b_norms = res.trace
        u_dot = xp.zeros_like(us[0])
        for k in range(len(vs)):
            u_prev, u_k, v_k = us[k], us[k + 1], vs[k]
            a_dot = _matvec(w_dot.mT, u_prev, xp) + _matvec(w.mT, u_dot, xp)
            v_dot = (a_dot - v_k * xp.sum(v_k * a_dot, axis=-1, keepdims=True)) / safe_divisor(a_norms[k], xp)
            b_dot = _matvec(w_dot, v_k, xp) + _matvec(w, v_dot, xp)
            if k == len(vs) - 1:
                sigma_dot = xp.sum(u_k * b_dot, axis=-1, keepdims=True)[..., None]
            u_dot = (b_dot - u_k * xp.sum(u_k * b_dot, axis=-1, keepdims=True)) / safe_divisor(b_norms[k], xp)
    # y = W / sigma: y_dot = (W_dot - y sigma_dot) / sigma.
    divisor = safe_divisor(sigma, xp)
    return (w_dot - w / divisor * sigma_dot) / divisor


def spectral_normalize_fwd(w, u=None, *, n_iter=50, tol=None, convention="constant_uv"):
    """Spectral normalization ``W / sigma`` by power iteration, returning the residuals.

    Parameters
    ----------
    w : array, real floating, shape (..., m, n), non-empty
        Never modified.
    u : array (..., m) or None
        Start of the power iteration (normalized first); the previous call's
        ``residuals.u`` to keep it persistent across training steps. ``None``: :func:`default_u`.
    n_iter : int >= 1, default 50
        Maximum number of iterations (use 1 with a persistent ``u``, as Miyato et al. do).
    tol : float >= 0 or None
        Stop once every ``u`` of the stack moves by at most ``tol`` (l2) in one iteration;
        ``0`` runs all ``n_iter``. ``None``: ``sqrt(eps)`` of ``w``'s dtype, which leaves a
        relative error of about ``eps`` in ``sigma`` when the top singular value is well
        separated (the error in ``sigma`` is quadratic in the error in ``u``).
    convention : {"constant_uv", "exact"}
        Derivative convention, see the module docstring and [PR-11].

    Returns
    -------
    y : array (..., m, n)
    residuals : SpectralNormResiduals
        ``residuals.u``, ``.v``, ``.sigma`` and ``.iterations`` are the estimate's results.
    """
    # One namespace for both (get_namespace raises TypeError on a mix of libraries).
    xp = get_namespace(w=w) if u is None else get_namespace(w=w, u=u)
    n_iter, tol, convention = _check_args(w, u, n_iter, tol, convention, xp)
    return _spectral_fwd(w, u, n_iter, tol, convention, xp)


def spectral_normalize_bwd(residuals, y_bar):
    """VJP of :func:`spectral_normalize` under the convention of the forward call [PR-11].

    ``"constant_uv"``: ``w_bar = (y_bar - <y_bar, y> u v^T) / sigma``. ``"exact"``: reverse
    mode through the stored power iterations."""
    xp = get_namespace(y_bar=y_bar)
    check_cotangent("y_bar", y_bar, residuals.shape, xp)
    # y depends on W only through W / scale, with scale a constant (see _spectral_fwd).
    return _spectral_bwd(residuals, y_bar, xp) / residuals.scale


def spectral_normalize_jvp(residuals, w_dot):
    """JVP of :func:`spectral_normalize` (the adjoint of :func:`spectral_normalize_bwd`) [PR-11]."""
    xp = get_namespace(w_dot=w_dot)
    check_cotangent("w_dot", w_dot, residuals.shape, xp)
    return _spectral_jvp(residuals, w_dot / residuals.scale, xp)


def spectral_normalize(w, u=None, *, n_iter=50, tol=None, convention="constant_uv"):
    """``W / sigma`` with ``sigma`` the power-iteration estimate of ``sigma_max(W)`` [PR-11].

    A normalization, not a projection: every matrix is rescaled, also those whose largest
    singular value is already below 1. See :func:`spectral_normalize_fwd` for the parameters
    and for ``u`` (use that function to get the final ``u`` back).
    """
    return spectral_normalize_fwd(w, u, n_iter=n_iter, tol=tol, convention=convention)[0]


SPECTRAL_NORMALIZE = register(
    Primitive(
        name="spectral_normalize",
        fun=spectral_normalize,
        fwd=spectral_normalize_fwd,
        bwd=spectral_normalize_bwd,
        jvp=spectral_normalize_jvp,
        proof="PR-11",
        second_order=False,
        strategy="reflip.testing.strategies:spectral_normalize_cases",
        bench_inputs="reflip.testing.bench_inputs:spectral_normalize_inputs",
        piecewise_linear=False,
    )
)
