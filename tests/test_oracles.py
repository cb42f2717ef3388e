"""Public functions checked on their own against an independent oracle, for every value of
their enumerated parameters (issue 20, blind spot "documented functions never asserted").

The oracles never restate the formula under test:

- an operator norm ``max ||W x||_a / ||x||_b`` is the maximum of the convex function
  ``||W x||_a`` over the extreme points of the unit ``l_b`` ball: ``+-e_j`` for ``b = 1`` and
  the ``2^n`` sign vectors for ``b = inf`` (brute force, small ``n``); for ``b = 2`` and a single
  row, the largest singular value of that ``1 x n`` matrix (an SVD);
- stacks are checked matrix by matrix in a Python loop, so an axis confusion in the vectorized
  code shows up.

Several of these tests were written to kill mutants that mutmut found surviving the module's own
tests (docs/mutation.md names them).
"""
import itertools
import math

import numpy as np
import pytest

from reflip import norm_p_inf, op_norm_2, op_norm_inf
from reflip.norms import check_p, dual_exponent
from reflip.universality import Dense, MaxMinNetwork, Select, random_constrained_network

P_VALUES = (1.0, 2.0, math.inf)


def _brute_op_norm(w, p_in, p_out):
    """``max_{||x||_{p_in} <= 1} ||W x||_{p_out}`` by enumerating the extreme points of the unit
    ball (``p_in`` in {1, inf}) or, for ``p_in = 2`` and ``p_out = inf``, the largest singular
    value of each row (``max_i max_{||x||_2 <= 1} |w_i x|``)."""
    w = np.asarray(w, dtype=np.float64)
    n = w.shape[-1]
    if p_in == 1.0:
        points = np.concatenate([np.eye(n), -np.eye(n)])
    elif p_in == math.inf:
        points = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
    else:
        assert p_out == math.inf
        return max(np.linalg.svd(row[None, :], compute_uv=False)[0] for row in w)
    return max(np.linalg.norm(w @ x, ord=p_out) for x in points)


def _stack(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5), (2, 2, 4, 3), (3, 3, 3)])
@pytest.mark.parametrize("p", P_VALUES)
def test_norm_p_inf_matrix_by_matrix_against_brute_force(p, shape):
    """[PR-7] ``||W||_{p,inf}`` of every matrix of a stack (a 1-d array is one row): the value
    for each matrix, and the shape ``w.shape[:-2]``. The square stack ``(3, 3, 3)`` catches a
    norm taken along the wrong one of two equal axes."""
    w = _stack(int(p) if p < 9 else 9, shape)
    got = np.asarray(norm_p_inf(w, p))
    mats = w.reshape((-1,) + w.shape[-2:]) if w.ndim >= 2 else w[None, None, :]
    want = np.array([_brute_op_norm(m, p, math.inf) for m in mats]).reshape(w.shape[:-2])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("shape", [(5,), (4, 5), (2, 3, 4), (3, 3, 3)])
def test_op_norms_matrix_by_matrix(shape):
    """``||W||_2`` (SVD) and ``||W||_inf`` (sign vectors, the extreme points of the unit l_inf
    ball) of every matrix of a stack [PR-1]."""
    w = _stack(7, shape)
    mats = w.reshape((-1,) + w.shape[-2:]) if w.ndim >= 2 else w[None, None, :]
    want2 = np.array([np.linalg.svd(m, compute_uv=False)[0] for m in mats]).reshape(w.shape[:-2])
    want_inf = np.array([_brute_op_norm(m, math.inf, math.inf) for m in mats]).reshape(w.shape[:-2])
    np.testing.assert_allclose(np.asarray(op_norm_2(w)), want2, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(op_norm_inf(w)), want_inf, rtol=1e-13)


@pytest.mark.parametrize("fn", [check_p, dual_exponent])
def test_exponent_helpers_name_p_by_default(fn):
    """Without ``name`` the messages name the parameter ``p`` (the project's error rule)."""
    with pytest.raises(TypeError, match=r"^p must be a real number"):
        fn("2")
    with pytest.raises(ValueError, match=r"^p must be 1, 2 or inf"):
        fn(3)


def test_check_p_reports_nan_as_nan():
    """A NaN exponent is refused with ``ValueError`` naming the value it got (not ``None``)."""
    with pytest.raises(ValueError, match=r"got nan$"):
        check_p(math.nan)


def _networks(p):
    """Constrained networks of the package and unconstrained hand-made ones (Dense and Select
    layers, norms above and below 1)."""
    rng = np.random.default_rng(11)
    yield random_constrained_network(3, (4, 2), p, seed=5)
    yield random_constrained_network(4, (2,), p, seed=6, bits=3)
    w1, w2, w3 = rng.standard_normal((4, 3)), 0.3 * rng.standard_normal((6, 4)), rng.standard_normal((1, 6))
    yield MaxMinNetwork((Dense(w1, np.zeros(4)), Dense(w2, np.ones(6)), Dense(w3, np.zeros(1))))
    yield MaxMinNetwork((Dense(0.2 * w1, np.zeros(4)), Select(np.array([3, 0, 0, 2]), 4),
                         Dense(0.1 * w2[:, :4], np.zeros(6))))
    yield MaxMinNetwork((Dense(w1[:1], np.zeros(1)),))


@pytest.mark.parametrize("p", P_VALUES)
def test_constraint_norms_against_brute_force(p):
    """[UN-1] ``MaxMinNetwork.constraint_norms(p) = (||W_1||_{p,inf}, max_k ||W_k||_inf)`` and
    ``satisfies_constraints(p)`` for every ``p`` of the paper, against the operator norms by
    brute force on the dense weights (0 for the later layers of a one-layer network)."""
    for net in _networks(p):
        mats = [layer.dense()[0] for layer in net.layers]
        first = _brute_op_norm(mats[0], p, math.inf)
        later = max((_brute_op_norm(m, math.inf, math.inf) for m in mats[1:]), default=0.0)
        got = net.constraint_norms(p)
        np.testing.assert_allclose(got, (first, later), rtol=1e-13, atol=0)
        assert net.satisfies_constraints(p) == (first <= 1.0 + 1e-12 and later <= 1.0 + 1e-12)
