"""Meta-tests: the universality claims (reflip/audit/universality.py for the evaluation,
reflip/audit/constructions.py for the constructions) must catch every planted bug below, and
pass on reflip itself with the same budget.

A mutant is the registry record of ``max_min_network`` with its evaluation swapped, or with a
``construction`` attribute (the claims take the construction from there) whose functions are
reflip's with one bug planted.
"""
import dataclasses
import math
import types
from unittest import mock

import numpy as np
import pytest
from hypothesis import Phase, settings

import reflip.universality as U
from reflip._registry import REGISTRY
from reflip.audit import claims_for, run_claim
from reflip.testing.backends import available_backends
from reflip.universality import interpolation as interpolation_module

pytestmark = pytest.mark.meta

NUMPY = available_backends(("numpy",))[0]
# Enough examples for every mutant to be found from a derandomized start; the meta-test
# fails (rather than passing vacuously) if a smaller budget ever stops finding one. No
# shrinking: only whether a mutant fails matters here.
META = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                phases=[Phase.explicit, Phase.reuse, Phase.generate])
RECORD = REGISTRY["max_min_network"]


class Mutant:
    """reflip's evaluation and construction with the given replacements."""

    def __init__(self, name, construction=None, **record):
        self.name = name
        rec = dataclasses.replace(RECORD, **record) if record else RECORD
        self.fun, self.fwd, self.bwd, self.jvp = rec.fun, rec.fwd, rec.bwd, rec.jvp
        self.piecewise_linear = True
        self.construction = types.SimpleNamespace(**{k: getattr(U, k) for k in U.__all__})
        for key, value in (construction or {}).items():
            setattr(self.construction, key, value)


def _patched(function, target, replacement):
    """``function`` run with ``target`` (a module attribute) replaced: the planted bug."""
    module, attr = target

    def mutant(*args, **kwargs):
        with mock.patch.object(module, attr, replacement):
            return function(*args, **kwargs)

    return mutant


# -- a construction that drops a constraint: padding carries a through (a, 0) -> min + max


def _relu_deepen(net, depth):
    """``a = min(a, 0) + max(a, 0)``: the right function, but the carrying row (1, 1) has
    l1 norm 2 > 1, so the constraint ||W_k||_inf <= 1 is dropped."""
    if depth == net.depth:
        return net
    w, b = net.layers[-1].dense()
    last = U.Dense(np.concatenate([w, np.zeros_like(w)]), np.concatenate([b, [0.0]]))
    carry = [U.Dense(np.array([[1.0, 1.0], [0.0, 0.0]]), np.zeros(2))] * (depth - net.depth - 1)
    return U.MaxMinNetwork((*net.layers[:-1], last, *carry, U.Dense(np.array([[1.0, 1.0]]), np.zeros(1))))


def _relu_padded(op):
    def lattice(a, b):
        depth = max(a.depth, b.depth)
        return op(_relu_deepen(a, depth), _relu_deepen(b, depth))

    return lattice


# -- wrong dual vectors for p = inf


def _dual_with(wrong):
    def dual(d, p):
        return wrong(d) if U.check_p(p) == math.inf else U.dual_vector(d, p)

    return dual


def _wrong_dual(wrong):
    target = (interpolation_module, "dual_vector")
    return {"interpolate": _patched(U.interpolate, target, _dual_with(wrong)),
            "two_point_interpolant": _patched(U.two_point_interpolant, target, _dual_with(wrong)),
            "approximate": _patched(U.approximate, target, _dual_with(wrong))}


def _l2_dual(d):
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), np.finfo(float).tiny)


# -- an error bound of delta instead of 2 delta


def _approximate_claiming_delta(f, box, delta, p, **kwargs):
    result = U.approximate(f, box, delta, p, **kwargs)
    return dataclasses.replace(result, error_bound=delta)


# -- other planted bugs the claims must see


def _no_clip(s, lo, hi):
    return s  # slopes a rounding error above 1 stay above 1


def _no_check(points, values, p, atol):
    return None


def _first_pair(points, values, p, atol=0.0, block=512):
    """Names the first violating pair found instead of the worst."""
    count, *_ = interpolation_module.lipschitz_violation(points, values, p, atol, block)
    if not count:
        return 0, None, None, None, None
    dist = np.linalg.norm(points[:, None] - points[None], ord=p, axis=-1)
    diff = np.abs(values[:, None] - values[None])
    i, j = np.argwhere(diff > dist + atol)[0]
    return count, int(i), int(j), float(diff[i, j]), float(dist[i, j])


def _max_first_fun(x, *, network):
    """MaxMin with pairs [max, min] (another library's layout) in the evaluation."""
    from reflip.layouts import max_min_layout

    xp = U.network.get_namespace(x)
    h = x
    for k, spec in enumerate(U.network._on_backend(network, x, xp)):
        h = U.network._affine(spec, h, xp)
        if k < network.depth - 1:
            h = max_min_layout(h, "contiguous_max_min")
    return h


def _no_permutation_bwd(residuals, y_bar):
    """VJP that skips the MaxMin permutations (treats MaxMin as the identity)."""
    xp = U.network.get_namespace(y_bar)
    v = y_bar
    for spec in reversed(residuals.layers):
        v = U.network._transpose(spec, v, xp)
    return v


MUTANTS = {
    "relu_padding_drops_constraint": Mutant(
        "relu_padding_drops_constraint",
        {"lattice_max": _relu_padded(U.lattice_max), "lattice_min": _relu_padded(U.lattice_min)}),
    "dual_inf_is_sign": Mutant("dual_inf_is_sign", _wrong_dual(np.sign)),
    "dual_inf_is_l2": Mutant("dual_inf_is_l2", _wrong_dual(_l2_dual)),
    "error_bound_delta": Mutant("error_bound_delta", {"approximate": _approximate_claiming_delta}),
    "slopes_not_clipped": Mutant("slopes_not_clipped", {
        "interpolate": _patched(U.interpolate, (interpolation_module.np, "clip"), _no_clip)}),
    "l2_rows_not_shrunk": Mutant("l2_rows_not_shrunk", {
        "interpolate": _patched(U.interpolate, (interpolation_module, "_shrink_to_unit_l2"), lambda w: w)}),
    "no_lipschitz_test": Mutant("no_lipschitz_test", {
        "interpolate": _patched(U.interpolate, (interpolation_module, "_check_lipschitz"), _no_check)}),
    "first_pair_not_worst": Mutant("first_pair_not_worst", {
        "interpolate": _patched(U.interpolate, (interpolation_module, "lipschitz_violation"), _first_pair)}),
    "max_min_pairs_descending": Mutant("max_min_pairs_descending", fun=_max_first_fun),
    "vjp_without_permutation": Mutant("vjp_without_permutation", bwd=_no_permutation_bwd),
}

EXPECTED = {
    "relu_padding_drops_constraint": ["max_min_network.lattice"],
    "dual_inf_is_sign": ["max_min_network.interpolates", "max_min_network.constrained",
                         "max_min_network.two_point"],
    "dual_inf_is_l2": ["max_min_network.interpolates", "max_min_network.two_point"],
    "error_bound_delta": ["max_min_network.approximation"],
    "slopes_not_clipped": ["max_min_network.constrained"],
    "l2_rows_not_shrunk": ["max_min_network.constrained"],
    "no_lipschitz_test": ["max_min_network.refuses"],
    "first_pair_not_worst": ["max_min_network.refuses"],
    # Not "interpolates": with the pairs reversed the network computes min_i max_j g_ij, which
    # interpolates too [UN-8]; the evaluation and the norms see the bug.
    "max_min_pairs_descending": ["max_min_network.evaluates", "max_min_network.norms"],
    "vjp_without_permutation": ["max_min_network.fd", "max_min_network.norms"],
}

CLAIMS = {c.id: c for c in claims_for("max_min_network")}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught(name):
    """[UN-3] [UN-4] [UN-8] [UN-10] [UN-13] [UN-2] [UN-5]: each planted bug fails the claims
    expected to catch it."""
    for claim_id in EXPECTED[name]:
        result = run_claim(CLAIMS[claim_id], MUTANTS[name], NUMPY, "float64", settings=META)
        assert result.status == "fail", f"mutant {name!r} passed {claim_id}: the suite has no teeth there"


@pytest.mark.parametrize("claim_id", sorted({c for ids in EXPECTED.values() for c in ids}))
def test_reflip_passes_the_same_checks(claim_id):
    """The catching claims are not trivially failing: reflip passes them with the same budget."""
    assert run_claim(CLAIMS[claim_id], RECORD, NUMPY, "float64", settings=META).status == "pass"


def test_constraint_mutant_computes_the_right_function():
    """The dropped-constraint mutant is caught by the constraint check alone: its lattice max
    is the right function (so no value-based check could see it), with a row of l1 norm 2."""
    a = U.random_constrained_network(2, [4], math.inf, seed=1)
    b = U.random_constrained_network(2, [4, 2], math.inf, seed=2)
    bad = MUTANTS["relu_padding_drops_constraint"].construction.lattice_max(a, b)
    x = np.round(np.random.default_rng(0).uniform(-2, 2, (64, 2)) * 64) / 64  # dyadic: exact sums
    np.testing.assert_array_equal(bad(x), np.maximum(a(x), b(x)))
    assert bad.constraint_norms(math.inf)[1] == 2.0


def test_every_mutant_has_expectations():
    assert set(MUTANTS) == set(EXPECTED)
