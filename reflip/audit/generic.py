"""Claims every registry primitive must satisfy: each check below is marked :func:`generic` and
declared for a primitive by :func:`generic_claims` (``<primitive>.<name>``, with the proof label
of that primitive's derivative).

The oracles are central finite differences in float64 and linear algebra identities; none of
these checks knows a primitive's derivative formula.
"""
from __future__ import annotations

import numpy as np

from ..tolerances import eps, exact_rtol, fd_rtol, fd_step
from .engine import CLAIMS, ClaimFailure, claim, device_array, exceeds, host, rng_for

__all__ = ["generic", "generic_claims", "GENERIC", "DECLARED_DERIVATIVES", "derivative_rtol", "derivative_scale",
           "default_fd_step", "finite_difference_jvp", "dot"]


# (name, kind, check, options of :func:`~reflip.audit.engine.claim`), in declaration order.
GENERIC: list = []


def generic(name, kind, **options):
    """Mark the decorated check as a claim of every primitive, ``<primitive>.<name>``, declared
    by :func:`generic_claims` (``options``: those of :func:`~reflip.audit.engine.claim`)."""
    def mark(check):
        GENERIC.append((name, kind, check, options))
        return check

    return mark


def derivative_rtol(dtype):
    """Agreement between a ``dtype`` derivative and a float64 central difference."""
    return max(fd_rtol(np.float64), float(np.sqrt(eps(dtype))))


def dot(a, b):
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


def _norm(a):
    with np.errstate(over="ignore", invalid="ignore"):  # inf / NaN norms fail the comparisons
        return float(np.linalg.norm(np.ravel(np.asarray(a, np.float64))))


def derivative_scale(x, y):
    """``||f(x)|| / ||x||``, the natural size of a derivative of ``f`` at ``x`` [AU-2]; 0 at
    ``x = 0``. Raises :class:`ClaimFailure` when a finite ``x`` gave a NaN or infinite output."""
    nx, ny = _norm(x), _norm(y)
    if not np.isfinite(ny):
        raise ClaimFailure(f"the forward returned NaN or inf for a finite input (||f(x)|| = {ny})")
    return ny / nx if nx > 0 else 0.0


def default_fd_step(x):
    """``eps**(1/3) max |x_i|`` (float64), or ``eps**(1/3)`` at ``x = 0`` [AU-2]: relative to the
    input's scale, so that a small input is not stepped over."""
    big = float(np.max(np.abs(np.asarray(x, np.float64)), initial=0.0))
    return fd_step(np.float64) * (big if big > 0 else 1.0)


# primitive -> ``oracle(x_fd, params)``: the function whose central differences ARE the
# derivative an implementation declares, when a declared convention makes its derivative differ
# from that of its forward (the authors' detached l1 threshold [PR-5]: the derivative of the
# projection with its threshold held constant); ``None`` when the case declares no such
# convention [AU-4]. Registered by the primitive's claim module.
DECLARED_DERIVATIVES: dict = {}


def _declared_function(impl, x_fd, params):
    oracle = DECLARED_DERIVATIVES.get(getattr(impl, "name", None))
    return oracle(x_fd, params) if oracle is not None else None


def finite_difference_jvp(impl, backend, x, params, x_dot, step, fun=None):
    """Central difference ``(f(x + h v) - f(x - h v)) / 2h`` in float64 of ``impl.fun``, or of
    ``fun`` (float64 array -> array) when given."""
    x = np.asarray(x, np.float64)
    if fun is None:
        def fun(a):
            return host(impl.fun(backend.asarray(a), **params))
    plus, minus = host(fun(x + step * x_dot)), host(fun(x - step * x_dot))
    with np.errstate(over="ignore", invalid="ignore"):
        return (plus - minus) / (2 * step)


def _directions(case, y_shape):
    rng = rng_for(case.x)
    return rng.standard_normal(np.shape(case.x)), rng.standard_normal(y_shape)


def fd_check(impl, backend, dtype, x_eval, x_fd, params, x_dot, y_bar, step):
    """Compare ``impl``'s VJP/JVP at ``x_eval`` with a central difference at ``x_fd``.

    Both comparisons are relative to the sizes of the two sides plus an absolute floor
    ``||y_bar|| ||v|| ||f(x)|| / ||x||`` (``||v||`` alone for the JVP), so that a Jacobian that
    is 0 or nearly so, where both sides are rounding noise, is judged on the scale of the
    derivatives of ``f`` rather than on the scale of that noise [AU-2].

    Under a declared convention that changes the derivative (:data:`DECLARED_DERIVATIVES`) the
    central differences are those of the function whose derivative the convention declares."""
    x = device_array(backend, x_eval, dtype)
    y, residuals = impl.fwd(x, **params)
    declared = _declared_function(impl, x_fd, params)
    fd = finite_difference_jvp(impl, backend, x_fd, params, x_dot, step, fun=declared)
    x_bar = host(impl.bwd(residuals, backend.asarray(y_bar, dtype)))
    rtol = derivative_rtol(dtype)
    natural = derivative_scale(x_eval, host(y))
    floor = _norm(x_dot) * natural
    scale = _norm(y_bar) * (_norm(fd) + floor) + _norm(x_bar) * _norm(x_dot) + eps(np.float64)
    vjp_err = abs(dot(x_bar, x_dot) - dot(y_bar, fd)) / scale
    figures = {"vjp_vs_fd": vjp_err}
    if exceeds(vjp_err, rtol):
        of = " of the declared derivative's function" if declared is not None else ""
        raise ClaimFailure(
            f"VJP disagrees with central differences{of}: <bwd(y_bar), v> = {dot(x_bar, x_dot):.10g}, "
            f"<y_bar, FD(v)> = {dot(y_bar, fd):.10g} (relative error {vjp_err:.3g} > {rtol:.3g})", figures)
    if impl.jvp is not None:
        y_dot = host(impl.jvp(residuals, backend.asarray(x_dot, dtype)))
        jvp_err = _norm(y_dot - fd) / (_norm(fd) + floor + eps(np.float64))
        figures["jvp_vs_fd"] = jvp_err
        if exceeds(jvp_err, rtol):
            raise ClaimFailure(
                f"JVP disagrees with central differences: relative error {jvp_err:.3g} > {rtol:.3g}", figures)
    return figures


@generic("fd", "differentiable", needs=("fwd", "bwd"))
def _check_fd(impl, case, backend, dtype):
    """VJP and JVP agree with float64 central differences.

    The step is relative to the input's scale [AU-2]; on a piecewise-linear function the
    largest step the case allows (``case.max_step``), where central differences are exact."""
    x64 = np.asarray(case.x, np.float64)
    y_shape = np.shape(host(impl.fun(backend.asarray(x64), **case.params)))
    x_dot, y_bar = _directions(case, y_shape)
    step = default_fd_step(x64)
    if case.max_step is not None:
        # Central differences are exact on a linear piece: take the largest step that stays on it.
        step = case.max_step if impl_piecewise_linear(impl) else min(step, case.max_step)
    step /= max(1.0, float(np.max(np.abs(x_dot))))
    return fd_check(impl, backend, dtype, case.x, x64, case.params, x_dot, y_bar, step)


def impl_piecewise_linear(impl):
    return bool(getattr(impl, "piecewise_linear", False))


@generic("adjoint", "general", needs=("fwd", "bwd", "jvp"))
def _check_adjoint(impl, case, backend, dtype):
    """[AU-3] The JVP and the VJP are adjoint (dot-product test).

    <y_bar, J v> = <J^T y_bar, v> up to the rounding of both products, relative to their sizes
    plus the floor ``||y_bar|| ||v|| ||f(x)|| / ||x||``."""
    x = device_array(backend, case.x, dtype)
    y, residuals = impl.fwd(x, **case.params)
    x_dot, y_bar = _directions(case, tuple(y.shape))
    y_dot = host(impl.jvp(residuals, backend.asarray(x_dot, dtype)))
    x_bar = host(impl.bwd(residuals, backend.asarray(y_bar, dtype)))
    lhs, rhs = dot(y_bar, y_dot), dot(x_bar, x_dot)
    floor = _norm(y_bar) * _norm(x_dot) * derivative_scale(case.x, host(y))
    err = abs(lhs - rhs) / (_norm(y_bar) * _norm(y_dot) + _norm(x_bar) * _norm(x_dot) + floor
                            + eps(np.float64))
    rtol = exact_rtol(dtype, n_ops=max(8, int(np.size(case.x))))
    if exceeds(err, rtol):
        raise ClaimFailure(f"JVP and VJP are not adjoint: <y_bar, J v> = {lhs:.10g}, "
                           f"<J^T y_bar, v> = {rhs:.10g} (relative gap {err:.3g} > {rtol:.3g})")
    return {"adjoint_gap": err}


@generic("no_mutation", "general")
def _check_no_mutation(impl, case, backend, dtype):
    """Inputs and cotangents are never modified."""
    # device_array makes NumPy inputs read-only (a write raises); the comparison below covers
    # the other backends.
    x = device_array(backend, case.x, dtype)
    before = host(x, dtype)
    y, residuals = impl.fwd(x, **case.params)
    impl.fun(x, **case.params)
    rng = rng_for(case.x)
    y_bar = device_array(backend, rng.standard_normal(tuple(y.shape)), dtype)
    y_bar_before = host(y_bar, dtype)
    if impl.bwd is not None:
        impl.bwd(residuals, y_bar)
    if impl.jvp is not None:
        impl.jvp(residuals, x)
    if not (np.array_equal(host(x, dtype), before, equal_nan=True)
            and np.array_equal(host(y_bar, dtype), y_bar_before, equal_nan=True)):
        raise ClaimFailure("an input array was modified in place")
    return {}


@generic("fun_is_fwd", "general")
def _check_fun_is_fwd(impl, case, backend, dtype):
    """The plain function equals the forward pass bit for bit, in the input's dtype."""
    x = device_array(backend, case.x, dtype)
    raw_fun, raw_fwd = impl.fun(x, **case.params), impl.fwd(x, **case.params)[0]
    for what, raw in (("fun(x)", raw_fun), ("fwd(x)[0]", raw_fwd)):
        if raw.dtype != x.dtype:
            raise ClaimFailure(f"{what} has dtype {raw.dtype}, not the input's {x.dtype}")
    y_fun, y_fwd = host(raw_fun, dtype), host(raw_fwd, dtype)
    if y_fun.shape != y_fwd.shape or not np.array_equal(
            np.ascontiguousarray(y_fun).view(np.uint8), np.ascontiguousarray(y_fwd).view(np.uint8)):
        raise ClaimFailure("fun(x) and fwd(x)[0] differ (they must agree bit for bit)")
    return {}


def _failure(impl, case, backend, dtype, message, figures=None, part=""):
    """A :class:`ClaimFailure` carrying the implementation's diagnosis of the difference, if any;
    ``part`` ("forward", "vjp", "jvp") says which output differed, so that a diagnosis is drawn
    from the evidence of that part only (a VJP cause is never attached to a forward mismatch)."""
    diagnose = getattr(impl, "diagnose", None)
    diagnosis = diagnose(case, backend, dtype, part=part) if diagnose is not None else ""
    return ClaimFailure(message + (f"; {diagnosis}" if diagnosis else ""), figures)


@generic("matches_reflip", "differentiable", reference=True)
def _check_matches_reflip(impl, case, backend, dtype):
    """Forward, VJP and JVP equal reflip's under the declared conventions.

    The implementation against reflip's own primitive, on inputs where both are
    differentiable: forward values, then VJP and JVP where provided (relative to reflip's,
    with the floor of [AU-2] for Jacobians that vanish)."""
    from .._registry import get

    reference = get(getattr(impl, "reference_name", None) or impl.name)
    x = device_array(backend, case.x, dtype)
    try:
        y, residuals = impl.fwd(x, **case.params)
    except ClaimFailure as exc:
        if exc.__cause__ is not None:
            # The adapter raised: the adapter layer has named the convention behind it, if any
            # (reflip.audit.diagnose.axis_convention); a diagnosis of outputs has none to read.
            raise
        raise _failure(impl, case, backend, dtype, str(exc), part="forward") from exc
    y_ref, res_ref = reference.fwd(x, **case.params)
    y, y_ref = host(y), host(y_ref)
    rtol = derivative_rtol(dtype)
    if y.shape != y_ref.shape:
        raise _failure(impl, case, backend, dtype, f"forward differs from reflip's: shape {y.shape} instead "
                                                   f"of {y_ref.shape}", part="forward")
    figures = {"forward_vs_reflip": _norm(y - y_ref) / (_norm(y_ref) + eps(np.float64))}
    if exceeds(figures["forward_vs_reflip"], rtol):
        raise _failure(impl, case, backend, dtype, f"forward differs from reflip's (relative error "
                                                   f"{figures['forward_vs_reflip']:.3g})", figures, "forward")
    x_dot, y_bar = _directions(case, y_ref.shape)
    natural = derivative_scale(case.x, y_ref)
    if impl.bwd is not None:
        x_bar = host(impl.bwd(residuals, backend.asarray(y_bar, dtype)))
        x_bar_ref = host(reference.bwd(res_ref, backend.asarray(y_bar, dtype)))
        figures["vjp_vs_reflip"] = _norm(x_bar - x_bar_ref) / (_norm(x_bar_ref) + _norm(y_bar) * natural
                                                                + eps(np.float64))
        if exceeds(figures["vjp_vs_reflip"], rtol):
            raise _failure(impl, case, backend, dtype,
                           f"VJP differs from reflip's (relative error {figures['vjp_vs_reflip']:.3g})", figures,
                           "vjp")
    if impl.jvp is not None and reference.jvp is not None:
        y_dot = host(impl.jvp(residuals, backend.asarray(x_dot, dtype)))
        y_dot_ref = host(reference.jvp(res_ref, backend.asarray(x_dot, dtype)))
        figures["jvp_vs_reflip"] = _norm(y_dot - y_dot_ref) / (_norm(y_dot_ref) + _norm(x_dot) * natural
                                                                + eps(np.float64))
        if exceeds(figures["jvp_vs_reflip"], rtol):
            raise _failure(impl, case, backend, dtype,
                           f"JVP differs from reflip's (relative error {figures['jvp_vs_reflip']:.3g})", figures,
                           "jvp")
    return figures


def generic_claims(primitive, label):
    """Declare the :func:`generic` claims for ``primitive``; ``label`` is the proof label of its
    derivative (VJP/JVP). Returns the claims, in :data:`GENERIC` order."""
    for name, kind, check, options in GENERIC:
        claim(f"{primitive}.{name}", label, kind, **options)(check)
    return [CLAIMS[f"{primitive}.{name}"] for name, *_ in GENERIC]
