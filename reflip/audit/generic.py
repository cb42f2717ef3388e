"""Claims every registry primitive must satisfy, built for a primitive by :func:`generic_claims`.

The oracles are central finite differences in float64 and linear algebra identities; none of
these checks knows a primitive's derivative formula.
"""
from __future__ import annotations

import numpy as np

from ..tolerances import eps, exact_rtol, fd_rtol, fd_step
from .engine import Claim, ClaimFailure, device_array, host, register_claim, rng_for

__all__ = ["generic_claims", "derivative_rtol", "finite_difference_jvp", "dot"]


def derivative_rtol(dtype):
    """Agreement between a ``dtype`` derivative and a float64 central difference."""
    return max(fd_rtol(np.float64), float(np.sqrt(eps(dtype))))


def dot(a, b):
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


def _norm(a):
    return float(np.linalg.norm(np.ravel(np.asarray(a, np.float64))))


def finite_difference_jvp(impl, backend, x, params, x_dot, step):
    """Central difference ``(f(x + h v) - f(x - h v)) / 2h`` of ``impl.fun`` in float64."""
    x = np.asarray(x, np.float64)
    plus = host(impl.fun(backend.asarray(x + step * x_dot), **params))
    minus = host(impl.fun(backend.asarray(x - step * x_dot), **params))
    return (plus - minus) / (2 * step)


def _directions(case, y_shape):
    rng = rng_for(case.x)
    return rng.standard_normal(np.shape(case.x)), rng.standard_normal(y_shape)


def fd_check(impl, backend, dtype, x_eval, x_fd, params, x_dot, y_bar, step):
    """Compare ``impl``'s VJP/JVP at ``x_eval`` with a central difference at ``x_fd``."""
    x = device_array(backend, x_eval, dtype)
    y, residuals = impl.fwd(x, **params)
    fd = finite_difference_jvp(impl, backend, x_fd, params, x_dot, step)
    x_bar = host(impl.bwd(residuals, backend.asarray(y_bar, dtype)))
    rtol = derivative_rtol(dtype)
    scale = _norm(y_bar) * _norm(fd) + _norm(x_bar) * _norm(x_dot) + eps(np.float64)
    vjp_err = abs(dot(x_bar, x_dot) - dot(y_bar, fd)) / scale
    figures = {"vjp_vs_fd": vjp_err}
    if vjp_err > rtol:
        raise ClaimFailure(
            f"VJP disagrees with central differences: <bwd(y_bar), v> = {dot(x_bar, x_dot):.10g}, "
            f"<y_bar, FD(v)> = {dot(y_bar, fd):.10g} (relative error {vjp_err:.3g} > {rtol:.3g})")
    if impl.jvp is not None:
        y_dot = host(impl.jvp(residuals, backend.asarray(x_dot, dtype)))
        jvp_err = _norm(y_dot - fd) / (_norm(fd) + _norm(x_dot) * eps(np.float64))
        figures["jvp_vs_fd"] = jvp_err
        if jvp_err > rtol:
            raise ClaimFailure(
                f"JVP disagrees with central differences: relative error {jvp_err:.3g} > {rtol:.3g}")
    return figures


def _check_fd(impl, case, backend, dtype):
    x64 = np.asarray(case.x, np.float64)
    y_shape = np.shape(host(impl.fun(backend.asarray(x64), **case.params)))
    x_dot, y_bar = _directions(case, y_shape)
    step = fd_step(np.float64) * max(1.0, float(np.max(np.abs(x64))))
    if case.max_step is not None:
        step = min(step, case.max_step) if not impl_piecewise_linear(impl) else case.max_step
        step /= max(1.0, float(np.max(np.abs(x_dot))))
    return fd_check(impl, backend, dtype, case.x, x64, case.params, x_dot, y_bar, step)


def impl_piecewise_linear(impl):
    # Central differences are exact on a linear piece: take the largest step that stays on it.
    return bool(getattr(impl, "piecewise_linear", False))


def _check_adjoint(impl, case, backend, dtype):
    if impl.jvp is None:
        return {}
    x = device_array(backend, case.x, dtype)
    y, residuals = impl.fwd(x, **case.params)
    x_dot, y_bar = _directions(case, tuple(y.shape))
    y_dot = host(impl.jvp(residuals, backend.asarray(x_dot, dtype)))
    x_bar = host(impl.bwd(residuals, backend.asarray(y_bar, dtype)))
    lhs, rhs = dot(y_bar, y_dot), dot(x_bar, x_dot)
    err = abs(lhs - rhs) / (_norm(y_bar) * _norm(y_dot) + _norm(x_bar) * _norm(x_dot) + eps(np.float64))
    rtol = exact_rtol(dtype, n_ops=max(8, int(np.size(case.x))))
    if err > rtol:
        raise ClaimFailure(f"JVP and VJP are not adjoint: <y_bar, J v> = {lhs:.10g}, "
                           f"<J^T y_bar, v> = {rhs:.10g} (relative gap {err:.3g} > {rtol:.3g})")
    return {"adjoint_gap": err}


def _check_no_mutation(impl, case, backend, dtype):
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


def _check_fun_is_fwd(impl, case, backend, dtype):
    x = device_array(backend, case.x, dtype)
    y_fun = host(impl.fun(x, **case.params), dtype)
    y_fwd = host(impl.fwd(x, **case.params)[0], dtype)
    if y_fun.shape != y_fwd.shape or not np.array_equal(
            np.ascontiguousarray(y_fun).view(np.uint8), np.ascontiguousarray(y_fwd).view(np.uint8)):
        raise ClaimFailure("fun(x) and fwd(x)[0] differ (they must agree bit for bit)")
    return {}


def _check_matches_reflip(impl, case, backend, dtype):
    """The implementation against reflip's own primitive, on inputs where both are
    differentiable: forward values, then VJP and JVP where provided."""
    from .._registry import get

    reference = get(getattr(impl, "reference_name", None) or impl.name)
    x = device_array(backend, case.x, dtype)
    try:
        y, residuals = impl.fwd(x, **case.params)
    except ClaimFailure as exc:
        diagnosis = getattr(impl, "diagnose", lambda *a: "")(case, backend, dtype)
        raise ClaimFailure(f"{exc}" + (f"; {diagnosis}" if diagnosis else "")) from exc
    y_ref, res_ref = reference.fwd(x, **case.params)
    y, y_ref = host(y), host(y_ref)
    rtol = derivative_rtol(dtype)
    figures = {"forward_vs_reflip": _norm(y - y_ref) / (_norm(y_ref) + eps(np.float64))}
    if y.shape != y_ref.shape or figures["forward_vs_reflip"] > rtol:
        diagnosis = getattr(impl, "diagnose", lambda *a: "")(case, backend, dtype)
        shapes = f", shape {y.shape} instead of {y_ref.shape}" if y.shape != y_ref.shape else ""
        raise ClaimFailure(f"forward differs from reflip's (relative error "
                           f"{figures['forward_vs_reflip']:.3g}{shapes})" + (f"; {diagnosis}" if diagnosis else ""))
    x_dot, y_bar = _directions(case, y_ref.shape)
    if impl.bwd is not None:
        x_bar = host(impl.bwd(residuals, backend.asarray(y_bar, dtype)))
        x_bar_ref = host(reference.bwd(res_ref, backend.asarray(y_bar, dtype)))
        figures["vjp_vs_reflip"] = _norm(x_bar - x_bar_ref) / (_norm(x_bar_ref) + eps(np.float64))
        if figures["vjp_vs_reflip"] > rtol:
            diagnosis = getattr(impl, "diagnose", lambda *a: "")(case, backend, dtype)
            raise ClaimFailure(f"VJP differs from reflip's (relative error {figures['vjp_vs_reflip']:.3g})"
                               + (f"; {diagnosis}" if diagnosis else ""))
    if impl.jvp is not None and reference.jvp is not None:
        y_dot = host(impl.jvp(residuals, backend.asarray(x_dot, dtype)))
        y_dot_ref = host(reference.jvp(res_ref, backend.asarray(x_dot, dtype)))
        figures["jvp_vs_reflip"] = _norm(y_dot - y_dot_ref) / (_norm(y_dot_ref) + eps(np.float64))
        if figures["jvp_vs_reflip"] > rtol:
            raise ClaimFailure(f"JVP differs from reflip's (relative error {figures['jvp_vs_reflip']:.3g})")
    return figures


def generic_claims(primitive, label, *, differentiable_kind="differentiable", general_kind="general"):
    """Register the claims every primitive must satisfy; ``label`` is the proof label of its
    derivative (VJP/JVP)."""
    specs = [
        ("fd", label, "VJP and JVP agree with float64 central differences", differentiable_kind, _check_fd,
         ("fwd", "bwd")),
        ("adjoint", label, "the JVP and the VJP are adjoint (dot-product test)", general_kind, _check_adjoint,
         ("fwd", "bwd", "jvp")),
        ("no_mutation", label, "inputs and cotangents are never modified", general_kind, _check_no_mutation,
         ("fwd",)),
        ("fun_is_fwd", label, "the plain function equals the forward pass bit for bit", general_kind,
         _check_fun_is_fwd, ("fwd",)),
    ]
    claims = [register_claim(Claim(f"{primitive}.{name}", primitive, lab, text, kind, check, needs=needs))
              for name, lab, text, kind, check, needs in specs]
    claims.append(register_claim(Claim(
        f"{primitive}.matches_reflip", primitive, label,
        "forward, VJP and JVP equal reflip's under the declared conventions", differentiable_kind,
        _check_matches_reflip, needs=("fwd",), reference=True)))
    return claims
