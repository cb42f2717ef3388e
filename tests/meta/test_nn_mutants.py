"""Meta-tests of the network suite: each planted bug — a Dense layer that skips its constraint
in the forward pass, a backward pass that forgets the bias gradient or the constraint's VJP, a
certificate missing its sqrt 2 (or using sqrt 2 in l_inf), a backward pass that forgets the NaN
rows — makes the real tests fail."""
import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings

from reflip import nn
from reflip.nn import certify
from reflip.testing.nn_checks import autograd_error, fd_error
from reflip.tolerances import exact_rtol, fd_rtol

from ..nn import test_backprop as backprop
from ..nn import test_certify as certificates
from ..nn import test_inputs as inputs
from ..nn import test_lipschitz as bounds

pytestmark = pytest.mark.meta


class SkipsConstraintInForward(nn.Dense):
    """Computes ``x W^T + b`` with the raw ``W``; its backward pass, effective weights and the
    upper bound still see ``W_eff``."""

    def _raw(self, params, x):
        y = x @ params["W"].T
        return y + params["b"] if self.bias else y

    def forward(self, params, x, xp):
        return self._raw(params, x), super().forward(params, x, xp)[1]

    def apply(self, params, x, xp):
        return self._raw(params, x)


class ForgetsBiasGradient(nn.Dense):
    def backward(self, residuals, y_bar, xp, input_only=False):
        x_bar, grads = super().backward(residuals, y_bar, xp, input_only)
        if grads is not None and self.bias:
            grads["b"] = xp.zeros_like(grads["b"])
        return x_bar, grads


class SkipsConstraintVJP(nn.Dense):
    """Returns the cotangent of ``W_eff`` as the gradient of ``W``."""

    def backward(self, residuals, y_bar, xp, input_only=False):
        x_bar, grads = super().backward(residuals, y_bar, xp, input_only)
        if grads is not None:
            grads["W"] = y_bar.T @ residuals.x
        return x_bar, grads


@pytest.mark.parametrize("mutant, networks", [
    (SkipsConstraintInForward, ["bjorck-maxmin", "linf-groupsort"]),
    (ForgetsBiasGradient, ["bjorck-maxmin", "linf-exact", "pinf-2"]),
    (SkipsConstraintVJP, ["bjorck-order1", "bjorck-maxmin", "linf-groupsort", "spectral-exact", "unit_row"]),
])
def test_backprop_checks_catch(monkeypatch, mutant, networks):
    """[NN-1] [NN-2] on every listed network built from the mutant layer, autograd and the
    finite differences each disagree with the backward pass beyond their tolerances, and the
    backprop-two-ways test fails (reflip's own layers pass it: tests/nn/test_backprop.py)."""
    monkeypatch.setattr(backprop, "D", mutant)
    layers = {**backprop.LAYERS, **backprop.NETWORKS}
    for name in networks:
        model, params, x, y_bar = backprop._case(layers[name](), 0)
        assert autograd_error(model, params, x, y_bar) > 1e3 * exact_rtol(np.float64, 1000), name
        assert fd_error(model, params, x, y_bar) > 1e3 * fd_rtol(np.float64), name
        with pytest.raises(AssertionError):
            backprop.test_backprop_two_ways(name)


def test_lipschitz_bound_catches_a_skipped_constraint(monkeypatch):
    """[NN-3] the hypothesis test of the upper bound, run on networks whose Dense layers skip
    their constraint in the forward pass, finds a pair or a Jacobian above the bound."""
    monkeypatch.setattr(nn, "Dense", SkipsConstraintInForward)
    inner = bounds.test_upper_bound_holds.hypothesis.inner_test
    run = settings(max_examples=60, derandomize=True, database=None, phases=[Phase.generate])(
        given(bounds.networks())(inner))
    with pytest.raises(AssertionError):
        run()


def _no_sqrt2(q):
    return 2.0 if q == math.inf else 1.0


def _sqrt2_everywhere(q):
    return math.sqrt(2.0)


@pytest.mark.parametrize("mutant, checks", [
    (_no_sqrt2, [lambda: certificates.test_no_certified_point_is_broken("l2-linear"),
                 lambda: certificates.test_no_certified_point_is_broken("l2-maxmin"),
                 certificates.test_radius_is_the_exact_distance_on_tight_linear_networks]),
    (_sqrt2_everywhere, [certificates.test_radius_is_the_exact_distance_on_tight_linear_networks]),
])
def test_certificate_checks_catch(monkeypatch, mutant, checks):
    """[CT-6] [CT-7] a certificate without the sqrt 2 of the l2 bound is broken by PGD on an
    orthonormal linear classifier and on a MaxMin network, and exceeds the exact distance to
    the decision boundary; sqrt 2 in place of 2 in l_inf exceeds it too."""
    monkeypatch.setattr(certify, "output_constant", mutant)
    for check in checks:
        with pytest.raises(AssertionError):
            check()


class ForgetsNanRows(nn.Sequential):
    """The chained VJPs alone: a NaN row of ``x`` gets the finite ``x_bar`` that GroupSort's
    permutation (or ReLU's ``NaN > 0`` mask) passes through."""

    def forward(self, params, x):
        y, res = super().forward(params, x)
        return y, res._replace(nan_rows=None)


@pytest.mark.parametrize("act", ["max_min", "group_sort", "full_sort", "relu"])
def test_nan_policy_check_catches_a_backward_without_nan_rows(act):
    """[NN-14] the NaN policy test fails on a network whose backward hides NaN rows (reflip's
    own passes it: tests/nn/test_inputs.py)."""
    model = ForgetsNanRows(inputs._model(act).layers)
    with pytest.raises(AssertionError):
        inputs.check_nan_policy(model)
