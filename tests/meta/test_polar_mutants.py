"""Meta-tests of :mod:`reflip.testing.mutants_polar`: the audit catches each planted bug with
the claims of ``EXPECTED`` (tests/meta/test_mutant_library.py runs the same audits with the
whole library), and the bugs are real (each mutant differs from reflip where it should)."""
import numpy as np
import pytest

from reflip._registry import REGISTRY
from reflip.polar import safety_bound
from reflip.testing.mutants import audit_mutant
from reflip.testing.mutants_polar import EXPECTED, MUTANTS
from reflip.testing.strategies.polar import worst_points

pytestmark = pytest.mark.meta


def test_every_mutant_has_expectations():
    assert set(MUTANTS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught_by_its_claims(name):
    """[PO-4] [PO-5] [PO-1] the overshooting schedule fails the safety claim, a wrong VJP sign
    the finite-difference and dot-product claims, a stale polynomial the spectral claim."""
    failed = {r.claim.id for r in audit_mutant(name).results if r.status == "fail"}
    missing = set(EXPECTED[name]) - failed
    assert not missing, f"mutant {name} passed {sorted(missing)}:\n{audit_mutant(name).to_markdown()}"


def _at_worst_point(n=4, degree=5, lower=1e-3):
    x = worst_points(degree, lower)[0]
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = np.concatenate([[x], np.full(n - 1, np.sqrt((1 - x * x) / (n - 1)))])
    return (u * s) @ v.T


def test_overshooting_schedule_really_overshoots():
    """[PO-4] one step of the unscaled schedule at a worst point reaches ~1 + E (~2 for
    lower = 1e-3), reflip's stays below 1 + safety_bound."""
    w = _at_worst_point()
    params = dict(degree=5, lower=1e-3, n_iter=1, on_nonconvergence="ignore")
    bad = np.linalg.svd(MUTANTS["overshooting_schedule"].fun(w, **params), compute_uv=False)[0]
    good = np.linalg.svd(REGISTRY["polar"].fun(w, **params), compute_uv=False)[0]
    assert bad > 1.9 and good <= 1 + safety_bound(w.shape, "float64", degree=5, lower=1e-3, n_iter=1)


def test_wrong_sign_vjp_is_the_negative():
    w = _at_worst_point()
    g = np.random.default_rng(1).standard_normal(w.shape)
    _, res = REGISTRY["polar"].fwd(w, n_iter=3, on_nonconvergence="ignore")
    np.testing.assert_array_equal(MUTANTS["vjp_wrong_sign"].bwd(res, g), -REGISTRY["polar"].bwd(res, g))
