"""Compute and certify the coefficient schedules of the Lipschitz-safe polar iteration
(proofs/polar.md, [PO-2] [PO-3]); ``python -m reflip._polar_schedule`` rewrites
``reflip/_polar_coefficients.py``, which :mod:`reflip.polar` imports.

For each degree ``d = 2q + 1`` (3 or 5) and each design lower bound ``l_0``:

1. [PO-2] On the interval ``[l_k, u_k]``, ``u_k = 1 + min(2^-8, 1 - l_k)`` (a margin above 1
   that absorbs rounding, [PO-4]), the odd polynomial ``p`` of degree ``d`` that
   minimises ``max |1 - p(s)|`` is found by the Remez exchange (the error equioscillates at
   ``q + 2`` points: ``l_k``, the ``q`` interior critical points of ``p``, and ``u_k``), in
   150-digit :mod:`decimal` arithmetic (software, so the result is the same on every machine).
   With error ``E``, ``p`` maps ``[l_k, u_k]`` into ``[1 - E, 1 + E]``.
2. Divide by ``(1 + E)(1 + delta)``: the scaled polynomial maps ``[l_k, u_k]`` below
   ``1 / (1 + delta)``; it maximises the ratio ``min p / max p`` on ``[l_k, u_k]`` among odd
   polynomials of degree ``d``, which is all that matters to the next steps (they see the
   interval up to scale). ``delta = 2^-52 ... 2^-40`` is the smallest margin that survives
   rounding the coefficients to float64.
3. [PO-3] Round the coefficients to float64 and certify, in exact rational arithmetic
   (:class:`fractions.Fraction`, Sturm sequences), for THOSE float64 coefficients:
   ``0 < p(s) < 1`` on ``(0, u_k]`` (safety: every singular value stays in ``(0, 1)``, whatever
   the input's lower bound, and one pushed by rounding up to ``u_k`` comes back below 1) and
   ``p(s) > l_{k+1}`` on ``[l_k, 1]`` (the next interval, a float64 number certified to lie
   below the true minimum).

Steps are added until ``1 - l_k <= 2^-50`` (four ulps of 1 in float64); the last polynomial is the
one the iteration repeats beyond the schedule. Nothing here runs at import
of :mod:`reflip.polar`: the schedules are computed once, by this script, and shipped as
constants (tests/test_polar.py recomputes one and compares it bit for bit).
"""
from __future__ import annotations

import decimal
import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

__all__ = ["DEGREES", "LOWERS", "remez_odd", "certify_step", "schedule", "main"]

DEGREES = (3, 5)
#: Design lower bounds l_0 of the cached schedules (the smallest singular value of W / ||W||_F
#: they are built for).
LOWERS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# 150 digits: near the end of a schedule the interval [l_k, 1] is ~1e-16 wide and the Remez
# system in s, s^3, s^5 on it loses ~3 x 16 digits to cancellation.
_CTX = decimal.Context(prec=150)
# Safety margins tried, smallest first.
_DELTAS = tuple(Fraction(1, 2**k) for k in range(52, 39, -1))
MAX_STEPS = 40
#: Each step is designed on [l_k, 1 + tau_k], tau_k = min(TAU, 1 - l_k): a singular value that
#: rounding pushed up to tau_k above 1 is mapped back below 1 instead of amplified [PO-4].
TAU = 2.0**-8
# p(1) = 1 with (degree - 1) / 2 derivatives 0 at 1: 3/2 s - 1/2 s^3 and 15/8 s - 5/4 s^3 + 3/8 s^5.
_LIMIT = {3: ("1.5", "-0.5"), 5: ("1.875", "-1.25", "0.375")}


# ----------------------------------------------------------------------------------------------
# Remez exchange in 150-digit decimal arithmetic [PO-2]


def _solve(a, b):
    """Gaussian elimination with partial pivoting (a small dense system, in Decimal)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        for r in range(col + 1, n):
            f = _CTX.divide(m[r][col], m[col][col])
            m[r] = [_CTX.subtract(x, _CTX.multiply(f, y)) for x, y in zip(m[r], m[col], strict=True)]
    x = [Decimal(0)] * n
    for r in range(n - 1, -1, -1):
        acc = m[r][n]
        for c in range(r + 1, n):
            acc = _CTX.subtract(acc, _CTX.multiply(m[r][c], x[c]))
        x[r] = _CTX.divide(acc, m[r][r])
    return x


def _odd(c, s):
    """``sum_j c_j s^(2j+1)``."""
    s2, out = _CTX.multiply(s, s), Decimal(0)
    for cj in reversed(c):
        out = _CTX.add(_CTX.multiply(out, s2), cj)
    return _CTX.multiply(out, s)


def _critical_points(c, lo, hi):
    """Zeros of ``p'(s) = sum_j (2j+1) c_j s^(2j)`` in ``(lo, hi)``, sorted (q <= 2: the
    derivative is linear or quadratic in ``t = s^2``)."""
    d = [_CTX.multiply(Decimal(2 * j + 1), cj) for j, cj in enumerate(c)]
    if len(d) == 2:
        ts = [_CTX.divide(-d[0], d[1])]
    else:
        disc = _CTX.subtract(_CTX.multiply(d[1], d[1]), _CTX.multiply(4 * d[0], d[2]))
        if disc < 0:
            return []
        root = _CTX.sqrt(disc)
        ts = [_CTX.divide(-d[1] - root, 2 * d[2]), _CTX.divide(-d[1] + root, 2 * d[2])]
    return sorted(_CTX.sqrt(t) for t in ts if t > 0 and lo < _CTX.sqrt(t) < hi)


def remez_odd(lower, degree, upper=1.0, *, iterations=200):
    """``(c, E)``: the odd polynomial ``p(s) = sum_j c_j s^(2j+1)`` of ``degree`` minimising
    ``max_{[lower, upper]} |1 - p(s)|``, and that minimum ``E`` (Decimal) [PO-2].

    The reference starts at points spread geometrically over ``[lower, upper]`` (the error of
    the optimum is spread over decades of ``s`` when ``lower`` is small).
    """
    q = (degree - 1) // 2
    lo, hi = Decimal(lower), Decimal(upper)
    n = q + 2
    ratio = _CTX.divide(hi, lo)
    ref = [_CTX.multiply(lo, _CTX.power(ratio, _CTX.divide(Decimal(i), Decimal(n - 1)))) for i in range(n)]
    ref[-1] = hi
    c, e = None, None
    for _ in range(iterations):
        rows = [[_CTX.power(x, 2 * j + 1) for j in range(q + 1)] + [Decimal((-1) ** i)] for i, x in enumerate(ref)]
        sol = _solve(rows, [Decimal(1)] * n)
        c, e = sol[:-1], abs(sol[-1])
        interior = _critical_points(c, lo, hi)
        if len(interior) != q:
            raise ArithmeticError(f"Remez lost an extremum at lower={lower}, degree={degree}: {interior}")
        new = [lo, *interior, hi]
        worst = max(abs(1 - _odd(c, x)) for x in new)
        ref = new
        if worst - e <= e * Decimal("1e-40"):
            return c, e
    raise ArithmeticError(f"Remez did not level at lower={lower}, degree={degree}")


# ----------------------------------------------------------------------------------------------
# Exact certificates: Sturm sequences over the rationals [PO-3]


def _trim(p):
    while len(p) > 1 and p[-1] == 0:
        p = p[:-1]
    return p


def _eval(p, x):
    out = Fraction(0)
    for a in reversed(p):
        out = out * x + a
    return out


def _rem(a, b):
    a = list(a)
    while len(a) >= len(b) and any(a):
        f = a[-1] / b[-1]
        shift = len(a) - len(b)
        for i, bi in enumerate(b):
            a[shift + i] -= f * bi
        a = _trim(a[:-1]) if len(a) > 1 else a
        if len(a) < len(b):
            break
    return _trim(a)


def _sturm_roots(p, lo, hi):
    """Number of distinct real roots of ``p`` (coefficients ascending, Fractions) in
    ``(lo, hi]`` (Sturm's theorem)."""
    p = _trim(p)
    if len(p) == 1:
        return 0
    seq = [p, _trim([i * a for i, a in enumerate(p)][1:])]
    while len(seq[-1]) > 1 or seq[-1][0] != 0:
        r = _rem(seq[-2], seq[-1])
        if len(r) == 1 and r[0] == 0:
            break
        seq.append([-a for a in r])

    def changes(x):
        signs = [v for v in (_eval(s, x) for s in seq) if v != 0]
        return sum(1 for a, b in zip(signs[:-1], signs[1:], strict=True) if (a < 0) != (b < 0))

    return changes(lo) - changes(hi)


def _positive_on(p, lo, hi):
    """``p > 0`` on ``[lo, hi]``, exactly."""
    return _eval(p, lo) > 0 and _eval(p, hi) > 0 and _sturm_roots(p, lo, hi) == 0


def _odd_poly(c):
    """Ascending coefficients in ``s`` of ``sum_j c_j s^(2j+1)``."""
    out = [Fraction(0)] * (2 * len(c))
    for j, cj in enumerate(c):
        out[2 * j + 1] = Fraction(cj)
    return out


def certify_step(coeffs, lower, next_lower, upper=1.0):
    """Whether the float64 ``coeffs`` (``p(s) = sum_j c_j s^(2j+1)``) satisfy, exactly:
    ``p(s)/s > 0`` and ``p(s) < 1`` on ``[0, upper]``, and ``p(s) > next_lower`` on
    ``[lower, 1]`` [PO-3]."""
    c = [Fraction(x) for x in coeffs]
    lo, nl, hi = Fraction(lower), Fraction(next_lower), Fraction(upper)
    # p(s)/s = sum_j c_j t^j in t = s^2 in [0, upper^2].
    if not _positive_on(c, Fraction(0), hi * hi):
        return False
    p = _odd_poly(c)
    one_minus = [-a for a in p]
    one_minus[0] += 1
    if not _positive_on(one_minus, Fraction(0), hi):
        return False
    shifted = list(p)
    shifted[0] -= nl
    return _positive_on(shifted, lo, Fraction(1))


# ----------------------------------------------------------------------------------------------
# Schedules


def _minimum_estimate(coeffs, lower):
    """``min p`` over ``[lower, 1]`` of the float64 coefficients, in Decimal (at ``lower`` and
    the interior critical points, where the minimax error's lower extrema sit)."""
    c = [Decimal(x) for x in coeffs]
    points = [Decimal(lower), *_critical_points(c, Decimal(lower), Decimal(1)), Decimal(1)]
    return min(_odd(c, x) for x in points)


def _upper(lower):
    """``u_k = 1 + tau_k``, ``tau_k = min(TAU, 1 - l_k)``, a float64 number not above its exact
    value (the certificate holds for the float)."""
    exact = 1 + min(Fraction(TAU), 1 - Fraction(lower))
    u = float(exact)
    return u if Fraction(u) <= exact else math.nextafter(u, 0.0)


def _one_step(lower, degree):
    """``(coefficients, next_lower, upper)`` of one certified step on ``[lower, upper]``."""
    upper = _upper(lower)
    try:
        c, e = remez_odd(lower, degree, upper)
    except ArithmeticError:
        if 1.0 - lower > 1e-8:
            raise
        # On an interval this narrow the exchange is lost in cancellation, and the minimax
        # polynomial is, to within its error O((1 - l)^(q+1)), the one with p(1) = 1 and its
        # first q derivatives 0 at 1: the Newton-Schulz polynomial (Björck's series, [BJ-2]).
        c, e = [Decimal(x) for x in _LIMIT[degree]], Decimal(0)
    for delta in _DELTAS:
        div = _CTX.multiply(1 + e, 1 + Decimal(delta.numerator) / Decimal(delta.denominator))
        coeffs = tuple(float(_CTX.divide(cj, div)) for cj in c)
        estimate = _minimum_estimate(coeffs, lower)
        # The next lower bound: a float64 number just below the minimum (certified below).
        nl = float(estimate)
        for _ in range(64):
            if Fraction(nl) < Fraction(estimate) and certify_step(coeffs, lower, nl, upper):
                return coeffs, nl, upper
            if Fraction(nl) >= Fraction(estimate):
                nl = float(Fraction(nl) - Fraction(nl) / 2**52)
                continue
            break
    raise ArithmeticError(f"no certified step on [{lower}, {upper}] for degree {degree}")


def schedule(lower, degree):
    """``[(coeffs, l_k, l_{k+1}, u_k)]``: the certified steps from ``l_0 = lower`` until the lower
    bound stops rising (the float64 limit) [PO-2] [PO-3]."""
    steps, lo = [], float(lower)
    for _ in range(MAX_STEPS):
        coeffs, nl, upper = _one_step(lo, degree)
        steps.append((coeffs, lo, nl, upper))
        # Stop when the next interval is within float64 rounding of 1 (or stops rising): the
        # last polynomial, certified on [l_{K-1}, 1], maps [l_K, 1] (a subset) above l_K too,
        # so repeating it keeps every certificate.
        if nl <= lo or 1.0 - nl <= 2.0**-50:
            break
        lo = nl
    return steps


def _render(schedules):
    lines = ['"""Generated by ``python -m reflip._polar_schedule`` (see that module and proofs/polar.md,',
             '[PO-2] [PO-3]); do not edit. ``SCHEDULES[(degree, l_0)]`` is a tuple of steps',
             '``(coefficients, l_k, l_{k+1}, u_k)``: ``p_k(s) = sum_j c_j s^(2j+1)`` certified to map',
             '``(0, u_k]`` into ``(0, 1)`` and ``[l_k, 1]`` above ``l_{k+1}``."""', "",
             "SCHEDULES = {"]
    for (degree, lower), steps in schedules.items():
        lines.append(f"    ({degree}, {lower!r}): (")
        for coeffs, lo, nl, upper in steps:
            lines.append(f"        ({tuple(coeffs)!r},")
            lines.append(f"         {lo!r}, {nl!r}, {upper!r}),")
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def compute_all():
    return {(d, lower): schedule(lower, d) for d in DEGREES for lower in LOWERS}


def main():
    path = Path(__file__).with_name("_polar_coefficients.py")
    path.write_text(_render(compute_all()), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
