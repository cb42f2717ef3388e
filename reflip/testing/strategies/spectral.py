"""Spectral normalization cases [PR-11]: matrices up to 5 x 5 with at most one batch axis.

Kinds: ``"general"`` and ``"pair"`` (bounded entries, either convention, 1..6 iterations);
``"differentiable"`` (entries of magnitude >= 1/4, the ``"exact"`` convention); and
``"converged"``: W = U diag(s) V^T with s_1 >= 2 s_2, run for 40 iterations (error (1/2)^80 in
u, [PR-11]).
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..._backend import haar_orthogonal
from .common import KINDS, Case, bounded_floats, case_rng

__all__ = ["spectral_normalize_cases", "SPECTRAL_KINDS", "SPECTRAL_CONVERGED_N_ITER"]


SPECTRAL_KINDS = KINDS + ("converged",)
SPECTRAL_CONVERGED_N_ITER = 40


@st.composite
def _spectral_case(draw, dtype, kind):
    batch = tuple(draw(st.lists(st.integers(1, 2), max_size=1)))
    # 1 x 1 matrices normalize to +-1 (derivative exactly 0) and a single row to w / ||w||, whose
    # JVP, the part of the direction orthogonal to w, is often tiny in 2-d: both are drawn, for
    # the absolute floor of the derivative checks [AU-2].
    m, n = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    shape = (*batch, m, n)
    if kind == "converged":
        k = min(m, n)
        s = np.concatenate([[1.0], draw(hnp.arrays(np.float64, k - 1, elements=st.floats(0, 0.5)))])
        rng = case_rng(draw)
        u, v = haar_orthogonal(rng, m, batch=batch)[..., :k], haar_orthogonal(rng, n, batch=batch)[..., :k]
        x = (u * s) @ np.swapaxes(v, -1, -2) * 2.0 ** draw(st.integers(-3, 3))
        params = {"n_iter": SPECTRAL_CONVERGED_N_ITER, "tol": 0.0,
                  "convention": draw(st.sampled_from(["constant_uv", "exact"]))}
        return Case(x.astype(dtype), params)

    def entries():
        x = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype, 4.0)))
        # Tiny entries would only test the scaling of [PR-11] (tests/test_spectral.py does).
        return np.where(np.abs(x) < 2.0**-20, 0, x).astype(dtype)

    x = entries()
    if kind == "differentiable":
        # Every entry of magnitude >= 1/4, so that no power-iteration norm vanishes; the
        # derivative of the computed iterations ("exact") is what central differences measure.
        x = np.where(np.abs(x) < 1 / 4, np.where(x < 0, -1 / 4, 1 / 4), x).astype(dtype)
        params = {"n_iter": draw(st.integers(1, 6)), "tol": 0.0, "convention": "exact"}
        # Smooth, but curved (normalizations divide by norms as small as ~1/4): a step of
        # 2**-20 keeps the central difference's O(h^2) truncation error below float64's
        # tolerance, its rounding error (eps / h ~ 1e-10) too.
        return Case(x, params, max_step=2.0**-20)
    params = {"n_iter": draw(st.integers(1, 6)), "tol": draw(st.sampled_from([0.0, 0.0, 1e-3])),
              "convention": draw(st.sampled_from(["constant_uv", "exact"]))}
    if kind == "general":
        return Case(x, params)
    if kind == "pair":
        return Case(x, params, x2=entries())
    raise ValueError(f"kind must be one of {SPECTRAL_KINDS}, got {kind!r}")


def spectral_normalize_cases(dtype, kind):
    """Strategy of :func:`reflip.spectral_normalize` cases (kinds: the module docstring)."""
    return _spectral_case(np.dtype(dtype), kind)
