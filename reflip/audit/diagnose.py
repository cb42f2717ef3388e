"""Explain a disagreement with reflip by the undeclared convention that would remove it.

Each diagnoser re-runs the raw adapter on the failing case under the alternative conventions
of its primitive and returns a sentence naming the first one under which the adapter agrees
with reflip, or "" when none does.
"""
from __future__ import annotations

import inspect

import numpy as np

from .._backend import get_namespace, to_numpy
from .._registry import REGISTRY
from ..layouts import MAX_MIN_LAYOUTS
from ..norms import dual_exponent
from ..tolerances import eps

__all__ = ["diagnose", "DIAGNOSERS", "axis_convention"]


def _close(a, b, dtype):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=float(np.sqrt(eps(dtype))), atol=0)


def _probes(dtype, group_sizes):
    """Inputs rich enough to tell conventions apart (a hypothesis-shrunk case is often too
    small: at width 2 every MaxMin layout is [min, max] or [max, min])."""
    rng = np.random.default_rng(12345)
    for k in group_sizes:
        x = (rng.permutation(3 * 24).reshape(3, 24) / 8.0 - 4.0).astype(dtype)
        yield x, {"group_size": k, "axis": -1}
        yield np.ascontiguousarray(x.T), {"group_size": k, "axis": 0}


def _explains(candidate, reference, probes, dtype):
    """``candidate(x, params)`` agrees with reflip on every probe."""
    try:
        return all(_close(candidate(x, p), reference(x, p), dtype) for x, p in probes)
    except Exception:
        return False


def _group_sort(impl, case, dtype):
    ref = REGISTRY["group_sort"]
    reference = lambda x, p: ref.fun(x, **p)  # noqa: E731
    declared = impl.conventions
    probes_all = list(_probes(dtype, (2, 3, 4)))
    probes_2 = [(x, p) for x, p in probes_all if p["group_size"] == 2]

    def redeclared(**conventions):
        alt = impl.redeclared(**conventions)
        return lambda x, p: alt.fun(x, **p)

    if _explains(lambda x, p: impl.fun(x, **p), reference, probes_all, dtype):
        forward_ok = True
    else:
        forward_ok = False
        declared_argument = declared.get("group_sort.argument", "group_size")
        other = "num_groups" if declared_argument == "group_size" else "group_size"
        if _explains(redeclared(**{"group_sort.argument": other}), reference, probes_all, dtype):
            meaning = {"num_groups": "number of groups", "group_size": "group size"}[other]
            return (f"outputs match reflip when the library's argument is read as the "
                    f"{meaning} (declare conventions['group_sort.argument'] = '{other}')"
                    + ("; did you pass the number of groups?" if other == "num_groups" else ""))

        def descending(x, p):
            y = np.moveaxis(impl.fun(x, **p), p["axis"], -1)
            k = p["group_size"]
            flipped = y.reshape(*y.shape[:-1], -1, k)[..., ::-1].reshape(y.shape)
            return np.moveaxis(flipped, -1, p["axis"])

        if _explains(descending, reference, probes_all, dtype):
            return "the library sorts each group in DESCENDING order"
        declared_layout = declared.get("group_sort.layout", "contiguous_min_max")
        for argument in (declared_argument, other):
            for layout in MAX_MIN_LAYOUTS:
                if (argument, layout) == (declared_argument, declared_layout):
                    continue
                change = {"group_sort.layout": layout, "group_sort.argument": argument}
                if _explains(redeclared(**change), reference, probes_2, dtype):
                    wanted = ", ".join(f"conventions['{key}'] = '{value}'" for key, value in change.items()
                                       if value != declared.get(key, {"group_sort.layout": "contiguous_min_max",
                                                                      "group_sort.argument": "group_size"}[key]))
                    hint = "; did you pass the number of groups?" if argument == "num_groups" else ""
                    return (f"for group size 2, outputs match reflip's MaxMin in the '{layout}' layout: "
                            f"declare {wanted}{hint}")
        # Sorting along the last axis whatever `axis` says.
        sq = (np.random.default_rng(7).permutation(144).reshape(12, 12) / 8.0).astype(dtype)
        square = [(sq, {"group_size": k, "axis": 0}) for k in (2, 3, 4)]
        if _explains(lambda x, p: impl.fun(x, **p), lambda x, p: ref.fun(x, **{**p, "axis": -1}), square, dtype):
            return "the library ignores `axis` and sorts along the last axis"
    if forward_ok and impl.bwd is not None:

        def vjp_with_forward_perm(x, p):
            k, axis = p["group_size"], p["axis"] % x.ndim
            y_bar = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
            perm = to_numpy(ref.fwd(x, **p)[1].perm)
            yg = np.moveaxis(y_bar, axis, -1)
            gathered = np.take_along_axis(yg.reshape(*yg.shape[:-1], -1, k), perm, axis=-1)
            return np.moveaxis(gathered.reshape(yg.shape), -1, axis)

        def impl_vjp(x, p):
            y_bar = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
            return impl.bwd(impl.fwd(x, **p)[1], y_bar)

        probes_3 = [(x, p) for x, p in probes_all if p["group_size"] >= 3]
        if _explains(impl_vjp, vjp_with_forward_perm, probes_3, dtype):
            return ("the VJP gathers the cotangent with the forward permutation instead of its "
                    "inverse (invisible for group size 2)")
    return ""


def axis_convention(impl, x, params, error):
    """Why a GroupSort adapter raised (``error``, e.g. torch's IndexError "Dimension out of
    range") on ``x`` with ``params``: the axis it really sorts along, when one explains every
    call that did not raise. "" when none does (the error is then reported alone).

    Three conventions are told apart on probes of 1 to 3 dimensions: a library ignoring ``axis``
    and sorting the last one, or a fixed one (dim 1, the channels of an NCHW layer, which raises
    on 1-d inputs); and a library correct along the last axis that raises for any other (both
    of the last-axis kinds are declared ``group_sort.axis = 'last'``)."""
    ref = REGISTRY["group_sort"]
    k, axis = params["group_size"], params.get("axis", -1) % np.ndim(x)
    dtype = np.asarray(x).dtype
    what = f"{type(error).__name__}: {error}" if error is not None else "an error"
    declare = "declare conventions['group_sort.axis'] = 'last', and the harness moves the feature axis last"
    # Group size 1 is the identity along every axis: the probes sort pairs instead (an axis
    # convention does not depend on the group size).
    k = k if k >= 2 else 2
    rng = np.random.default_rng(4321)
    shapes = [(4 * k,), (2 * k, 2 * k), (2 * k, 2 * k, 2 * k)]  # every axis a multiple of k
    probes = [(rng.permutation(int(np.prod(s))).reshape(s).astype(dtype) / 8, a)
              for s in shapes for a in range(-1, len(s))]
    ran, failed = [], set()
    for p, a in probes:
        try:
            y = np.asarray(impl.fun(p, group_size=k, axis=a), np.float64)
        except Exception:
            failed.add(p.ndim)
            continue
        ran.append((p, y, _close(y, ref.fun(p, group_size=k, axis=a), dtype)))
    wrong = any(not right for _, _, right in ran)
    for fixed in (-1, 1, 0, 2):
        if not wrong or not all(p.ndim > fixed and _close(y, ref.fun(p, group_size=k, axis=fixed), dtype)
                                for p, y, _ in ran):
            continue
        if fixed == -1:
            return (f"the library ignores `axis` and sorts along the last axis (hence {what} for axis="
                    f"{params.get('axis', -1)} on a {np.ndim(x)}-d input): {declare}")
        dims = "/".join(map(str, sorted(failed)))
        return (f"the library sorts along axis {fixed} whatever `axis` says (the channel axis of an NCHW "
                f"layer?), hence the error" + (f" on {dims}-d inputs" if dims else "") + ": an axis convention "
                f"reflip cannot declare; move the feature axis to {fixed} in the adapter (e.g. "
                f"x.movedim(axis, {fixed}) before the call and back after)")
    if axis != np.ndim(x) - 1:
        moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
        try:
            agrees = _close(impl.fun(moved, group_size=k, axis=-1), ref.fun(moved, group_size=k, axis=-1), dtype)
        except Exception:
            agrees = False
        if agrees:
            return (f"the library raised {what} for axis={params.get('axis', -1)} on a {np.ndim(x)}-d input but "
                    f"sorts correctly along the last axis: its axis handling supports the last axis only ({declare})")
    return ""


# ----------------------------------------------------------------------------------------------
# l_inf projection [PR-2] [PR-5]


def _linf_project(impl, case, dtype):
    """The paper code's traps: a projection onto the l1 SPHERE (no test for rows already
    inside, which get pushed out), a row scaling instead of a projection, and the detached
    threshold in the VJP, undeclared (or declared the other way)."""
    ref = REGISTRY["linf_project"]
    x, params = np.asarray(case.x, dtype), case.params
    r = params["radius"]
    y = np.asarray(impl.fun(x, **params), np.float64).reshape(-1, x.shape[-1])
    rows, y_ref = x.reshape(-1, x.shape[-1]).astype(np.float64), np.asarray(ref.fun(x, **params), np.float64)
    y_ref = y_ref.reshape(rows.shape)
    tol = float(np.sqrt(eps(dtype))) * (np.sum(np.abs(rows), axis=-1) + r)
    wrong = np.max(np.abs(y - y_ref), axis=-1) > tol
    if np.any(wrong):
        l1 = np.sum(np.abs(rows), axis=-1)
        inside = l1 <= r
        on_sphere = np.abs(np.sum(np.abs(y), axis=-1) - r) <= tol
        if np.any(wrong & inside) and np.all(on_sphere[wrong & inside]):
            return ("rows already inside the l1 ball were moved onto its sphere: the library projects onto "
                    "the l1 SPHERE (the paper code's threshold, applied without testing whether a row is "
                    "inside), not the ball")
        scaled = rows * (r / np.where(l1 > 0, l1, 1.0))[:, None]
        if np.all(np.max(np.abs(y - np.where(inside[:, None], rows, scaled)), axis=-1) <= tol):
            return ("every row outside is scaled by r / ||w_i||_1 (reflip's row_scale with p = inf), not "
                    "projected: a scaling is feasible but is not the projection [PR-10]")
        return ""
    if impl.bwd is None:
        return ""
    declared = impl.conventions.get("linf_project.threshold", "exact")
    other = "detached" if declared == "exact" else "exact"
    y_bar = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    got = impl.bwd(impl.fwd(x, **params)[1], y_bar)
    alt = ref.bwd(ref.fwd(x, **{**params, "threshold": other})[1], y_bar)
    if _close(got, alt, dtype):
        what = ("treats the threshold theta as a constant (the paper code's detached threshold, [PR-5])"
                if other == "detached" else "is the exact Jacobian of the projection [PR-4]")
        return f"the VJP {what}: declare conventions['linf_project.threshold'] = '{other}'"
    return ""


# ----------------------------------------------------------------------------------------------
# Björck [BJ-3] [BJ-6] [BJ-8]


def _scalar_iterates(x64, order, beta, scaling, k_max):
    """``[U diag(phi^k(s / c)) V^T for k = 0..k_max]`` in float64 (the oracle of [BJ-3])."""
    from .bjorck import phi, scale_of, series

    c = series(order, beta)
    u, s, vt = np.linalg.svd(x64, full_matrices=False)
    t = s / scale_of(x64, {"scaling": scaling})[..., 0]
    out = []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(k_max + 1):
            out.append((u * t[..., None, :]) @ vt)
            t = phi(t, c)
    return out


def vjp_detached_from(residuals, y_bar, first):
    """reflip's unrolled Björck VJP with the polynomial part ``A (P(X) - c_0 I)`` of every step
    ``k >= first`` treated as a constant (a port that detaches late iterations to save memory):
    those steps pass ``c_0 A_bar`` back instead of their VJP [BJ-8]."""
    from ..bjorck import _recomputed_pairs, _scale_jacobian, _scaled_eyes, _step_vjp, _tall

    xp = get_namespace(y_bar)
    cfg = residuals.config
    a_bar = _tall(y_bar, cfg.transposed)
    pairs = list(_recomputed_pairs(residuals, xp))  # k = K-1, ..., 0
    for i, (a, x) in enumerate(pairs):
        k = len(pairs) - 1 - i
        eyes = _scaled_eyes(cfg.coeffs, a, xp)
        a_bar = cfg.coeffs[0] * a_bar if k >= first else _step_vjp(a, x, a_bar, cfg.coeffs, eyes)
    return _tall(_scale_jacobian(residuals, a_bar, xp), cfg.transposed)


def _bjorck_probes(dtype):
    """A tall and a wide matrix with singular values 0.9, 1/2, 1/256: slow enough to converge
    (~20 order-1 steps from 1/256 / ||W||_F) that consecutive iterates, scalings and orders
    differ visibly, and inside every certified basin (a hypothesis-shrunk case is often 1 x 1
    or rank one, where every iterate is already orthonormal)."""
    rng = np.random.default_rng(2019)
    u, _ = np.linalg.qr(rng.standard_normal((5, 3)))
    v, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    w = ((u * np.array([0.9, 0.5, 1 / 256])) @ v.T).astype(dtype)
    return [w, np.ascontiguousarray(w.T)]


def _bjorck(impl, case, dtype, part=""):
    """A forward that differs is explained from forward evidence only: on the failing case
    itself, another iterate of the scalar map (a step at n_iter = 0, an early stop on the step
    size, extra steps); on the probes, other fixed parameters (an ignored or shifted n_iter,
    another scaling, order or beta). A VJP that differs, under a forward that agrees on the case
    and on the probe compared, is explained by another backward mode or late iterations
    detached. A VJP cause is never attached to a forward mismatch."""
    from .bjorck import iterate_cause

    ref = REGISTRY["bjorck"]
    params = {k: v for k, v in case.params.items() if k not in ("tol", "on_nonconvergence")}
    x_case = np.asarray(case.x, dtype)
    y_case = np.asarray(impl.fun(x_case, **params), np.float64)
    # The caller's verdict when it says the forward differed (matches_reflip's tolerance),
    # else the comparison on the case.
    forward_case_ok = part != "forward" and _close_fro(y_case, ref.fun(x_case, **params), dtype)
    if not forward_case_ok:
        cause = iterate_cause(x_case, params, y_case, dtype)
        if cause:
            return cause
    order, beta = params.get("order", 1), params.get("beta", 0.5)
    scaling = params.get("scaling", "frobenius")
    fixed_n = "n_iter" in impl.declared_params("bjorck")
    n_iters = [params.get("n_iter", 25)] if fixed_n else [3, 7]
    probes = [(w, {**params, "n_iter": n}) for w in _bjorck_probes(dtype) for n in n_iters]
    outputs = [np.asarray(impl.fun(w, **p), np.float64) for w, p in probes]

    def iterates(w, o, b, sc):
        return _scalar_iterates(w.astype(np.float64), o, b, sc, 60)

    def steps(o, b, sc):
        """The iteration count at which each probe matches the oracle (None: at none)."""
        found = []
        for (w, _), y in zip(probes, outputs, strict=True):
            found.append(next((k for k, cand in enumerate(iterates(w, o, b, sc)) if _close_fro(y, cand, dtype)), None))
        return found

    asked = [p["n_iter"] for _, p in probes]
    own = steps(order, beta, scaling)
    if not forward_case_ok:
        # The forward differs on the case: forward evidence only, from here.
        if own == asked:
            return ""  # the probes agree: none of them explains the case's forward
        if None not in own:
            if len(set(own)) == 1 and not fixed_n:
                return (f"the library ignores n_iter: it runs {own[0]} iterations whatever it is passed "
                        f"(declare conventions['bjorck.params']['n_iter'] = {own[0]})")
            shift = {k - n for k, n in zip(own, asked, strict=True)}
            if len(shift) == 1:
                (d,) = shift
                return f"the library runs n_iter {d:+d} iterations (an off-by-one loop?)"
        divisor = {"frobenius": "||W||_F", "sqrt_mn": "sqrt(m n)", "none": "1"}
        for other in (sc for sc in ("frobenius", "sqrt_mn", "none") if sc != scaling):
            if steps(order, beta, other) == asked:
                return (f"outputs match reflip's with scaling='{other}' instead of '{scaling}': the library divides "
                        f"W by {divisor[other]} (declare conventions['bjorck.params']['scaling'] = '{other}', "
                        f"or pass `scaling` through)")
        for o, b in [(o, 0.5) for o in range(1, 5)] + [(1, 0.375), (1, 0.25)]:
            if (o, b) != (order, beta) and steps(o, b, scaling) == asked:
                return (f"outputs match reflip's with order={o}, beta={b} instead of order={order}, beta={beta}: "
                        f"declare the library's constants, conventions['bjorck.params'] = "
                        f"{{'order': {o}, 'beta': {b}}}")
        return ""
    if part == "forward" or impl.bwd is None:
        return ""
    # The VJP on the probes, with the case's backward mode and enough iterations to converge.
    backward = params.get("backward", "unrolled")
    other = "implicit" if backward == "unrolled" else "unrolled"
    for (w, p), y in zip(probes, outputs, strict=True):
        p = {**p, "checkpoint": False}
        if not _close_fro(y, ref.fun(w, **p), dtype):
            continue  # a VJP diagnosis only where the forward it differentiates agrees
        y_bar = np.random.default_rng(0).standard_normal(w.shape).astype(dtype)
        got = impl.bwd(impl.fwd(w, **p)[1], y_bar)
        if _close_fro(got, ref.bwd(ref.fwd(w, **p)[1], y_bar), dtype):
            continue
        if _close_fro(got, ref.bwd(ref.fwd(w, **{**p, "backward": other})[1], y_bar), dtype):
            return (f"the VJP is reflip's backward='{other}' "
                    + ("(the derivative of the limit U V^T, [BJ-9])" if other == "implicit"
                       else "(the derivative of the computed iterations, [BJ-8])")
                    + f": declare conventions['bjorck.params']['backward'] = '{other}'")
        if backward == "unrolled":
            residuals = ref.fwd(w, **p)[1]
            for first in range(p["n_iter"]):
                if _close_fro(got, vjp_detached_from(residuals, y_bar, first), dtype):
                    return (f"the VJP matches reflip's with every iteration from step {first} on detached "
                            f"(treated as a constant): the backward must differentiate all iterations [BJ-8]; "
                            f"detaching them makes the gradient wrong by a factor that grows with every step")
        return ""
    return ""


def _close_fro(a, b, dtype):
    """``||a - b||_F <= sqrt(eps) (||b||_F + 1)`` per stack (a Frobenius comparison: Björck's
    outputs are orthonormal, of norm ~1 per column)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.linalg.norm(a - b) <= np.sqrt(eps(dtype)) * (np.linalg.norm(b) + 1.0))


# ----------------------------------------------------------------------------------------------
# Spectral normalization [PR-11]


def _power_sigmas(w64, n_iter):
    """``(||W v_k||, ||W^T u_{k-1}||)`` for k = 1..n_iter of the power iteration from reflip's
    default start, per matrix, in float64."""
    import array_api_compat.numpy as xp

    from ..spectral import default_u

    u = np.asarray(default_u(w64.shape[-2], np.float64, xp, w64.shape[:-2]), np.float64)
    out = []
    for _ in range(n_iter):
        a = (u[..., None, :] @ w64)[..., 0, :]  # W^T u
        v = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-300)
        b = (w64 @ v[..., None])[..., 0]  # W v
        nb = np.linalg.norm(b, axis=-1)
        out.append((nb, np.linalg.norm(a, axis=-1)))
        u = b / np.maximum(nb, 1e-300)[..., None]
    return out


def _spectral_normalize(impl, case, dtype):
    """The estimate sigma read off the output (``W = sigma y``) against the power iteration's
    candidates: a stale u (the one before the last update), one iteration more or less, and the
    exact largest singular value."""
    params = case.params
    x = np.asarray(case.x, dtype)
    y = np.asarray(impl.fun(x, **params), np.float64)
    w64 = x.astype(np.float64)
    ny = np.linalg.norm(y, axis=(-2, -1))
    sigma = np.linalg.norm(w64, axis=(-2, -1)) / np.where(ny > 0, ny, 1.0)
    n_iter = params.get("n_iter", 50)
    trace = _power_sigmas(w64, n_iter + 1)

    def equals(candidate):
        return bool(np.all(np.abs(sigma - candidate) <= np.sqrt(eps(dtype)) * np.abs(candidate)))

    if equals(trace[n_iter - 1][0]):
        return ""
    if equals(trace[n_iter - 1][1]):
        return ("sigma = ||W^T u_{K-1}|| = u_{K-1}^T W v_K: the estimate uses the u from BEFORE the last "
                "power-iteration update (a stale u); sigma must be u_K^T W v_K = ||W v_K||")
    for k, what in ((n_iter - 2, "one power iteration fewer"), (n_iter, "one power iteration more")):
        if k >= 0 and equals(trace[k][0]):
            return f"sigma is the estimate after {what} than n_iter = {n_iter} (an off-by-one loop?)"
    if equals(np.linalg.norm(w64, ord=2, axis=(-2, -1))):
        return ("sigma is the exact largest singular value (an SVD), not the power-iteration estimate after "
                f"n_iter = {n_iter} iterations")
    return ""


# ----------------------------------------------------------------------------------------------
# ||.||_{p,inf} projections and row scalings [PR-7] [PR-10]


def _rows(primitive):
    def diagnose_rows(impl, case, dtype):
        """The norm of the ball taken for its dual (claim C7's trap), and a row scaling that
        normalizes every row, rows inside included."""
        ref = REGISTRY[primitive]
        x, params = np.asarray(case.x, dtype), case.params
        p, r = params["p"], params["radius"]
        y = np.asarray(impl.fun(x, **params), np.float64)
        if _close(y, ref.fun(x, **params), dtype):
            return ""
        dual = dual_exponent(p)
        if p != 2 and _close(y, ref.fun(x, **{**params, "p": dual}), dtype):
            return (f"outputs match reflip's with p = {dual:g} instead of {p:g}: the library bounds the l_{p:g} norm "
                    f"of each row, but ||W||_{{p,inf}} = max_i ||w_i||_q bounds the DUAL norm (q = {dual:g} for "
                    f"p = {p:g}) [PR-7]")
        q = dual
        rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
        norms = np.linalg.norm(rows, ord=q, axis=-1)
        inside = (norms <= r) & (norms > 0)
        grown = np.linalg.norm(y.reshape(rows.shape), ord=q, axis=-1) > norms * (1 + np.sqrt(eps(dtype)))
        if np.any(inside & grown):
            return ("rows inside the ball were scaled UP onto its sphere: every row is normalized to norm r, "
                    "where only rows outside may be scaled down [PR-10]")
        return ""

    return diagnose_rows


DIAGNOSERS = {"group_sort": _group_sort, "linf_project": _linf_project, "bjorck": _bjorck,
              "spectral_normalize": _spectral_normalize, "pinf_project": _rows("pinf_project"),
              "row_scale": _rows("row_scale")}


def diagnose(impl, case, dtype, part=""):
    """The diagnosis of ``impl``'s disagreement on ``case``; ``part`` ("forward", "vjp", "jvp",
    or "" when unknown) is the output that differed: a diagnoser taking ``part`` draws its
    diagnosis from that output's evidence only."""
    fn = DIAGNOSERS.get(impl.name)
    if fn is None:
        return ""
    return fn(impl, case, dtype, part=part) if "part" in inspect.signature(fn).parameters else fn(impl, case, dtype)
