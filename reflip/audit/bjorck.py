"""Björck claims (proofs/bjorck.md, claim C5 of the paper), checked on any implementation of the
registry's ``bjorck`` interface.

Oracles: the SVD (NumPy, float64) with the SCALAR map ``phi(s) = s g(1 - s^2)``,
``g(q) = sum_j c_j q^j`` (the truncated series that defines the iteration, [BJ-1] [BJ-3]) iterated
on each singular value — never the matrix polynomial the implementation evaluates — and
orthogonal matrices drawn per case. Tolerances come from a first-order model of how the
iteration propagates rounding errors (:func:`forward_error_bound`), not from a constant.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .._backend import haar_orthogonal
from .._registry import REGISTRY
from ..tolerances import eps
from .engine import ClaimFailure, NotMeasured, claim, claims_for, device_array, exceeds, host, rng_for
from .generic import generic_claims

PRIMITIVE = "bjorck"


# ----------------------------------------------------------------------------------------------
# Oracle helpers


def series(order, beta=0.5):
    """``c_0, ..., c_p`` of ``g(q)``: ``binom(2j, j) / 4^j`` (the series of ``(1 - q)^(-1/2)``), or
    ``(1, beta)`` for order 1 (``(1 + beta) - beta s^2 = 1 + beta (1 - s^2)``) [BJ-1]."""
    if order == 1:
        return np.array([1.0, beta])
    return np.array([math.comb(2 * j, j) / 4.0**j for j in range(order + 1)])


def _g(t, c):
    q = 1.0 - t * t
    out, dout = np.zeros_like(t), np.zeros_like(t)
    for cj in c[::-1]:  # Horner in q, with its derivative
        dout = dout * q + out
        out = out * q + cj
    return out, dout


def phi(t, c):
    """The scalar map ``s g(1 - s^2)`` of one step [BJ-3]."""
    return t * _g(t, c)[0]


def _step_gain(t, c):
    """Largest factor by which one step can stretch a perturbation of ``A = U diag(t) V^T``
    (first order): the derivative ``phi'`` along singular values, the divided differences
    ``(phi(a) -+ phi(b)) / (a -+ b)`` that mix two singular directions, and ``g(1 - a^2)`` for the
    directions outside the range (tall matrices)."""
    g, dg = _g(t, c)
    dphi = g - 2 * t * t * dg
    f = t * g
    a, b = t[..., :, None], t[..., None, :]
    fa, fb = f[..., :, None], f[..., None, :]
    same = np.maximum(np.abs(dphi)[..., :, None], np.abs(dphi)[..., None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        plus = np.where(a + b > 0, np.abs((fa + fb) / (a + b)), same)
        minus = np.where(a != b, np.abs((fa - fb) / (a - b)), same)
    return max(float(np.max(np.abs(dphi))), float(np.max(np.abs(g))), float(np.max(plus)),
               float(np.max(minus)))


def scale_of(x64, params):
    """The divisor ``c`` of each matrix [BJ-6], shape ``(..., 1, 1)``."""
    scaling = params.get("scaling", "frobenius")
    if scaling == "frobenius":
        # m ||x / m||_F with m = max |x_ij|: the squares of tiny entries would underflow.
        big = np.max(np.abs(x64), axis=(-2, -1), keepdims=True)
        big = np.where(big > 0, big, 1.0)
        c = big * np.linalg.norm(x64 / big, axis=(-2, -1), keepdims=True)
        return np.where(c > 0, c, 1.0)
    m, n = x64.shape[-2:]
    return np.full(x64.shape[:-2] + (1, 1), math.sqrt(m * n) if scaling == "sqrt_mn" else 1.0)


def spectral_oracle(x, params, n_iter=None):
    """``(U diag(phi^K(s / c)) V^T, t_K, amplification)`` in float64 [BJ-3].

    ``amplification`` bounds, to first order, how much the iteration magnifies the rounding
    error committed at each step: ``sum_k prod_{j >= k} gain_j`` over the singular-value
    trajectory (~ K + 1 near convergence, where rotations neither grow nor shrink; ``P(0)^K``
    for a zero singular value, which the iteration multiplies by ``P(0)`` every step).
    """
    x64 = np.asarray(x, np.float64)
    order, beta = params.get("order", 1), params.get("beta", 0.5)
    k_iter = params.get("n_iter", 25) if n_iter is None else n_iter
    c = series(order, beta)
    u, s, vt = np.linalg.svd(x64, full_matrices=False)
    t = s / scale_of(x64, params)[..., 0]
    amp = 1.0
    for _ in range(k_iter):
        amp = 1.0 + _step_gain(t, c) * amp
        t = phi(t, c)
    return (u * t[..., None, :]) @ vt, t, amp


def forward_error_bound(dtype, params, shape, amp):
    """Absolute Frobenius error allowed between an implementation's output and the oracle:
    the rounding error of one step (``order + 1`` products with inner dimension ``N``, plus the
    scaling) times the amplification of :func:`spectral_oracle`, with a safety factor of 4."""
    n = min(shape[-2:])
    order = params.get("order", 1)
    return 4.0 * (order + 2) * (n + 2) * math.sqrt(max(shape[-2:])) * eps(dtype) * amp


def _fixed_k(params):
    """The parameters with ``tol`` removed: the claims below compare a fixed number of steps."""
    return {k: v for k, v in params.items() if k not in ("tol", "on_nonconvergence")}


def _run(impl, x, params, backend, dtype):
    y, _ = impl.fwd(device_array(backend, x, dtype), **params)
    return host(y)


def _per_matrix_err(a, b):
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged output: inf fails below
        return np.sqrt(np.sum(d * d, axis=(-2, -1)))


def _compare(got, want, bound, what):
    if got.shape != want.shape:
        raise ClaimFailure(f"{what}: output shape {got.shape} differs from the expected {want.shape}")
    err = float(np.max(_per_matrix_err(got, want)))
    if exceeds(err, bound):
        raise ClaimFailure(f"{what}: ||difference||_F = {err:.3g} > {bound:.3g} (rounding-error bound)")
    return err / bound


def iterate_cause(x, params, y, dtype):
    """Why a Björck output ``y`` is not iterate ``K = n_iter`` of the scalar map [BJ-3], when it
    is another iterate ``k`` of it (each compared within its own rounding bound): a loop that
    always runs at least one step (``k >= 1`` at ``K = 0``), an early stop (``k < K``: a stopping
    test on the step size) or extra steps (``k > K``). "" when ``y`` is no iterate."""
    n = params.get("n_iter", 25)
    y = np.asarray(y, np.float64)
    # Iterate K itself first: once converged, later and earlier iterates agree to rounding.
    for k in [n] + [k for k in range(0, max(2 * n, n + 3) + 1) if k != n]:
        want, _, amp = spectral_oracle(x, params, n_iter=k)
        if y.shape == want.shape and np.max(_per_matrix_err(y, want)) <= forward_error_bound(dtype, params, x.shape,
                                                                                               amp):
            break
    else:
        return ""
    if k == n:
        return ""
    if n == 0:
        return (f"at n_iter = 0 the library returned iterate {k}, not the scaled input W / c: it always runs at "
                f"least one step (a loop of max(n_iter, 1) steps, or a do-while); n_iter = 0 must return W / c")
    if k < n:
        return (f"the library returned iterate {k} of n_iter = {n}: it stopped early; an early stop on the step "
                f"size ||A_(k+1) - A_k||_F? (met where the iterates barely move, long before they converge); "
                f"a library stopping on a tolerance declares it (conventions['bjorck.params']['tol'])")
    return f"the library ran {k - n} step(s) more than n_iter = {n} (an off-by-one loop?)"


def _compare_iterates(impl, x, params, got, want, bound, dtype, what):
    """:func:`_compare`, with the cause named when the output is another iterate."""
    try:
        return _compare(got, want, bound, what)
    except ClaimFailure as exc:
        cause = iterate_cause(x, params, got, dtype)
        if not cause:
            raise
        raise ClaimFailure(f"{exc}; {cause}") from None


# ----------------------------------------------------------------------------------------------
# Checks


# Every check below calls the forward only: an adapter without VJP or JVP is checked all the same.


@claim("bjorck.spectral_ties", "BJ-3", "ties", cases="matrices with repeated singular values")
@claim("bjorck.spectral", "BJ-3", "general")
def _check_spectral(impl, case, backend, dtype):
    """[BJ-3] B(W) = U diag(phi^K(s / c)) V^T: the iteration acts on singular values only.

    phi is the scalar series map, iterated K times on each singular value, zero ones included."""
    params = _fixed_k(case.params)
    got = _run(impl, case.x, params, backend, dtype)
    want, _, amp = spectral_oracle(case.x, params)
    ratio = _compare_iterates(impl, case.x, params, got, want, forward_error_bound(dtype, params, case.x.shape, amp),
                              dtype, f"B(W) is not U diag(phi^{params.get('n_iter')}(s)) V^T")
    return {"error_over_bound": ratio, "amplification": amp}


NOT_ONE_LIPSCHITZ = ("singular values above 1: the layer is not 1-Lipschitz; certificates computed from it are "
                     "invalid")


def largest_singular_value(y):
    """The largest singular value over a stack (float64 SVD); inf for a non-finite output."""
    y = np.asarray(y, np.float64)
    if not np.all(np.isfinite(y)):
        return math.inf
    return float(np.max(np.linalg.svd(y, compute_uv=False), initial=0.0))


@claim("bjorck.at_most_one", "BJ-12", "general")
def _check_at_most_one(impl, case, backend, dtype):
    """[BJ-12] No singular value of the output exceeds 1 beyond rounding.

    From ||W / c||_2 <= 1 (always so with the Frobenius scaling) and beta <= 1/2, phi^K maps every
    scaled singular value into [0, 1]; the computed output's largest singular value exceeds 1 by
    at most the forward rounding bound of [BJ-3] (Weyl). An orthogonalizer that overshoots 1
    (a Newton-Schulz polynomial tuned for speed) fails: its layer is not 1-Lipschitz."""
    params = _fixed_k(case.params)
    x64 = np.asarray(case.x, np.float64)
    t = np.linalg.svd(x64, compute_uv=False) / scale_of(x64, params)[..., 0]
    if params.get("order", 1) == 1 and params.get("beta", 0.5) > 0.5 or float(np.max(t, initial=0.0)) > 1.0:
        raise NotMeasured("outside the premise of [BJ-12] (||W / c||_2 > 1 or beta > 1/2): nothing is stated there")
    got = _run(impl, case.x, params, backend, dtype)
    _, _, amp = spectral_oracle(case.x, params)
    bound = forward_error_bound(dtype, params, case.x.shape, amp)
    smax = largest_singular_value(got)
    figures = {"excess_over_one": smax - 1.0, "excess_over_bound": (smax - 1.0) / bound}
    if exceeds(smax, 1.0 + bound):
        raise ClaimFailure(f"largest singular value {smax!r} = 1 + {smax - 1.0:.3g} exceeds 1 + {bound:.3g} (the "
                           f"rounding bound after {params.get('n_iter')} steps): {NOT_ONE_LIPSCHITZ}; does the "
                           "iteration overshoot 1? (a Newton-Schulz polynomial tuned for speed, such as Muon's "
                           "quintic (3.4445, -4.7750, 2.0315), leaves singular values in about [0.7, 1.2]; "
                           "Björck's series with beta <= 1/2 never exceeds 1)", figures)
    return figures


@claim("bjorck.polar", "BJ-5", "converged")
def _check_polar(impl, case, backend, dtype):
    """[BJ-5] Inside the basin the result converges to the polar factor U V^T and is semi-orthonormal.

    From singular values inside the basin, the result is the polar factor U V^T of numpy's SVD
    and Y^T Y = I or Y Y^T = I."""
    params = _fixed_k(case.params)
    got = _run(impl, case.x, params, backend, dtype)
    _, t, amp = spectral_oracle(case.x, params)
    gap = float(np.max(np.abs(t - 1.0)))
    if gap > math.sqrt(eps(np.float64)):
        raise ClaimFailure(f"case not converged by the scalar map (|phi^K(s) - 1| = {gap:.3g}): "
                           "the strategy must give enough iterations")
    u, _, vt = np.linalg.svd(np.asarray(case.x, np.float64), full_matrices=False)
    bound = forward_error_bound(dtype, params, case.x.shape, amp) + math.sqrt(min(case.x.shape[-2:])) * gap
    ratio = _compare(got, u @ vt, bound, "the converged result is not the polar factor U V^T")
    small = got if got.shape[-2] >= got.shape[-1] else np.swapaxes(got, -1, -2)
    gram = np.swapaxes(small, -1, -2) @ small
    residual = float(np.max(np.linalg.norm(gram - np.eye(gram.shape[-1]), axis=(-2, -1))))
    if exceeds(residual, 2 * bound):
        raise ClaimFailure(f"the converged result is not semi-orthonormal: ||Y^T Y - I||_F = {residual:.3g}")
    return {"error_over_bound": ratio, "orthonormality_residual": residual}


@claim("bjorck.transpose", "BJ-4", "general")
def _check_transpose(impl, case, backend, dtype):
    """[BJ-4] B(W^T) = B(W)^T.

    A wide matrix is the transpose of a tall one."""
    params = _fixed_k(case.params)
    got = _run(impl, case.x, params, backend, dtype)
    got_t = _run(impl, np.swapaxes(case.x, -1, -2).copy(), params, backend, dtype)
    _, _, amp = spectral_oracle(case.x, params)
    bound = 2 * forward_error_bound(dtype, params, case.x.shape, amp)
    return {"error_over_bound": _compare(got_t, np.swapaxes(got, -1, -2), bound, "B(W^T) != B(W)^T")}


@claim("bjorck.orthogonal_equivariance", "BJ-4", "general")
def _check_orthogonal_equivariance(impl, case, backend, dtype):
    """[BJ-4] B(P W R) = P B(W) R for orthogonal P, R."""
    params = _fixed_k(case.params)
    x = np.asarray(case.x, np.float64)
    *batch, m, n = x.shape
    rng = rng_for(case.x)
    p, r = haar_orthogonal(rng, m, batch=batch), haar_orthogonal(rng, n, batch=batch)
    rotated = (p @ x @ r).astype(dtype)
    got = _run(impl, rotated, params, backend, dtype)
    want = p @ _run(impl, case.x, params, backend, dtype) @ r
    _, _, amp = spectral_oracle(case.x, params)
    # Rounding P W R to the dtype perturbs the input by ~eps: one more amplified error.
    bound = 3 * forward_error_bound(dtype, params, x.shape, amp)
    return {"error_over_bound": _compare(got, want, bound, "B(P W R) != P B(W) R")}


@claim("bjorck.batch", "BJ-4", "general")
def _check_batch(impl, case, backend, dtype):
    """[BJ-4] A stack equals its matrices one at a time."""
    x = np.asarray(case.x)
    if x.ndim == 2:
        raise NotMeasured("a single matrix: the claim is about stacks")
    params = _fixed_k(case.params)
    got = _run(impl, x, params, backend, dtype)
    flat_x, flat_y = x.reshape(-1, *x.shape[-2:]), got.reshape(-1, *x.shape[-2:])
    worst = 0.0
    for i in range(flat_x.shape[0]):
        alone = _run(impl, flat_x[i].copy(), params, backend, dtype)
        _, _, amp = spectral_oracle(flat_x[i], params)
        bound = 2 * forward_error_bound(dtype, params, x.shape, amp)
        worst = max(worst, _compare(alone, flat_y[i], bound, f"matrix {i} of the stack differs from it alone"))
    return {"error_over_bound": worst}


@claim("bjorck.fixed_points", "BJ-5", "ties")
def _check_fixed_points(impl, case, backend, dtype):
    """[BJ-5] Orthonormal matrices are fixed points.

    (Semi-)orthonormal Q: B(Q) = Q with scaling="none"."""
    params = {**_fixed_k(case.params), "scaling": "none"}
    u, _, vt = np.linalg.svd(np.asarray(case.x, np.float64), full_matrices=False)
    q = (u @ vt).astype(dtype)
    got = _run(impl, q, params, backend, dtype)
    _, _, amp = spectral_oracle(q, params)
    bound = 2 * forward_error_bound(dtype, params, q.shape, amp)
    return {"error_over_bound": _compare(got, q, bound, "an orthonormal Q is not a fixed point")}


@claim("bjorck.scale_invariance", "BJ-6", "converged")
def _check_scale_invariance(impl, case, backend, dtype):
    """[BJ-6] The limit is scale invariant; with the Frobenius scaling every iterate is.

    The limit does not depend on the scale of W; with the Frobenius scaling every iterate does
    not either, so B(2^j W) = B(W) bit for bit."""
    params = _fixed_k(case.params)
    x = np.asarray(case.x)
    base = _run(impl, x, params, backend, dtype)
    figures = {}
    if params.get("scaling", "frobenius") == "frobenius":
        for j in (-3, 5):
            got = _run(impl, (x * np.asarray(2.0**j, x.dtype)).astype(x.dtype), params, backend, dtype)
            if not np.array_equal(got, base):
                raise ClaimFailure(f"B(2^{j} W) != B(W) with the Frobenius scaling (W / ||W||_F is "
                                   "exactly the same matrix)")
        factors = (3.0,)
    else:
        factors = (0.5, 0.75)  # stays inside the basin certified for W
    _, _, amp = spectral_oracle(x, params)
    bound = 2 * forward_error_bound(dtype, params, x.shape, amp)
    for a in factors:
        xa = (np.asarray(x, np.float64) * a).astype(dtype)
        _, t, amp_a = spectral_oracle(xa, params)
        gap = float(np.max(np.abs(t - 1.0)))
        b = bound + 2 * forward_error_bound(dtype, params, x.shape, amp_a) + math.sqrt(min(x.shape[-2:])) * gap
        figures[f"error_over_bound_x{a}"] = _compare(_run(impl, xa, params, backend, dtype), base, b,
                                                     f"B({a} W) != B(W) at convergence")
    return figures


def _measured_residual(y):
    """max over the stack of ||Y^T Y - I||_F on the smaller Gram matrix, in float64."""
    y = np.asarray(y, np.float64)
    if y.shape[-2] < y.shape[-1]:
        y = np.swapaxes(y, -1, -2)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged output: inf fails the check
        gram = np.swapaxes(y, -1, -2) @ y
        return float(np.max(np.linalg.norm(gram - np.eye(gram.shape[-1]), axis=(-2, -1))))


def _why_silent(x, params, y, dtype):
    """Why an implementation may have taken an unconverged result for converged: a stopping
    test on the step size ``||A_{k+1} - A_k||_F`` instead of ``||Y^T Y - I||_F``, met near a
    zero or tiny singular value, where the iterates barely move long before (or without ever)
    converging [BJ-5] [BJ-7]. The evidence, when there is some: the iterate it returned."""
    n = params["n_iter"]
    iterates = [spectral_oracle(x, params, n_iter=k) for k in range(n + 1)]

    def is_iterate(k):
        want, _, amp = iterates[k]
        return y.shape == want.shape and np.max(_per_matrix_err(y, want)) <= forward_error_bound(
            dtype, params, x.shape, amp)

    k = None if is_iterate(n) else next((k for k in range(n) if is_iterate(k)), None)
    where = f"it returned iterate {k} of n_iter = {n} as converged" if k is not None else \
        "it took an unconverged result for converged"
    return (f"; {where}: does its stopping test measure the step size ||A_(k+1) - A_k||_F instead of "
            "||Y^T Y - I||_F? (a stopping test on the step size is met near zero or tiny singular values, "
            "where the iterates barely move long before converging)")


def _is_convergence_error(exc):
    """reflip's error, raised directly or wrapped by the adapter layer."""
    from ..bjorck import BjorckConvergenceError

    return any(isinstance(e, BjorckConvergenceError) for e in (exc, exc.__cause__, exc.__context__))


def report_applies(primitive):
    """The applicability of a ``<primitive>.report`` claim: it checks reflip's ``tol`` /
    ``on_nonconvergence`` interface, which an adapter is not passed, so it applies to one whose
    library stops at a fixed tolerance, declared in ``conventions["<primitive>.params"]``, and
    reports a miss as reflip does (a :class:`~reflip.bjorck.BjorckConvergenceWarning`, or the
    error with ``on_nonconvergence`` declared ``"raise"``)."""

    def applies(impl):
        if getattr(impl, "takes", lambda param: True)("tol") or impl.declared_params(primitive).get("tol") is not None:
            return ""
        return (f"checks reflip's tol / on_nonconvergence interface, which an adapter is not passed; a library "
                f"that stops at a fixed tolerance declares conventions['{primitive}.params'] = {{'tol': ..., "
                f"'on_nonconvergence': 'warn' or 'raise'}}")

    return applies


def convergence_report(impl, case, backend, dtype, primitive, why_silent=None):
    """The check of every orthonormalizing iteration's ``report`` claim [BJ-7] [PO-6].

    A result that missed ``tol`` never comes back silently (a BjorckConvergenceWarning or, with
    ``on_nonconvergence="raise"``, an error) and one that met it comes back without either;
    where the implementation returns reflip's report (``residuals.info``), the reported residual
    is ||Y^T Y - I||_F of the returned Y, ``n_iter`` at most the one asked and ``converged``
    says whether it met ``tol``. ``why_silent(x, params, y, dtype)`` may explain a silent miss."""
    from ..bjorck import BjorckConvergenceWarning

    params = dict(case.params)
    tol = params["tol"]
    x = device_array(backend, case.x, dtype)
    raised = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            y, residuals = impl.fwd(x, **params)
        except Exception as exc:  # noqa: BLE001 - only reflip's convergence error is expected
            if not _is_convergence_error(exc):
                raise
            raised = True
    warned = any(issubclass(w.category, BjorckConvergenceWarning) for w in caught)
    if raised:
        # Get the result that was refused, to check that refusing it was right. An adapter is
        # not passed on_nonconvergence: its refused result is reflip's (matches_reflip holds the
        # two together).
        source = impl if getattr(impl, "takes", lambda param: True)("on_nonconvergence") else REGISTRY[primitive]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BjorckConvergenceWarning)
            y, residuals = source.fwd(x, **{**params, "on_nonconvergence": "warn"})
    measured = _measured_residual(host(y))
    n = min(case.x.shape[-2:])
    # The report is computed in the working dtype: ||fl(Y^T Y) - Y^T Y||_F <= ~N^2 eps.
    slack = 4.0 * (n + 2) ** 2 * eps(dtype) * (1.0 + measured)
    info = getattr(residuals, "info", None)
    if exceeds(measured, tol + slack):  # a NaN residual is no convergence either
        if not (warned or raised):
            raise ClaimFailure(f"missed tol = {tol:g} (||Y^T Y - I||_F = {measured:.3g}) silently: "
                               "no BjorckConvergenceWarning and no error"
                               + (why_silent(case.x, params, host(y), dtype) if why_silent else ""))
        if raised != (params.get("on_nonconvergence", "warn") == "raise"):
            raise ClaimFailure(f"on_nonconvergence={params.get('on_nonconvergence')!r} not honoured")
    elif measured < tol - slack and (warned or raised):
        raise ClaimFailure(f"reached tol = {tol:g} (||Y^T Y - I||_F = {measured:.3g}) but reported "
                           "non-convergence")
    if info is None:
        return {}
    reported = info.max_residual
    if exceeds(abs(reported - measured), slack):
        raise ClaimFailure(f"info reports residual {reported:.3g} but ||Y^T Y - I||_F = {measured:.3g}")
    if params.get("n_iter") is not None and info.n_iter > params["n_iter"]:
        raise ClaimFailure(f"info.n_iter = {info.n_iter} > n_iter = {params['n_iter']}")
    if abs(measured - tol) > slack and info.converged != (measured <= tol):
        raise ClaimFailure(f"info.converged = {info.converged} but ||Y^T Y - I||_F = {measured:.3g}, "
                           f"tol = {tol:g}")
    return {"report_error": abs(reported - measured) / slack}


@claim("bjorck.report", "BJ-7", "convergence", applicable=report_applies(PRIMITIVE))
def _check_report(impl, case, backend, dtype):
    """[BJ-7] The convergence report is truthful and a missed tol is never silent.

    See :func:`convergence_report`. Only the forward is needed, so adapters are checked too."""
    return convergence_report(impl, case, backend, dtype, PRIMITIVE, _why_silent)


generic_claims(PRIMITIVE, "BJ-8")
CLAIMS = claims_for(PRIMITIVE)
