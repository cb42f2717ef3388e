"""Ports reproducing the situations in which the audit's diagnoses misfired on real libraries
(issue 16, item 4), each written the way the library writes it, and the Newton-Schulz
"orthogonalization" of item 5. tests/audit/test_diagnose.py audits each and checks what the report
says."""
import math

import numpy as np
import torch

from reflip import linf_project
from reflip.adapters import TorchAdapter

# ---------------------------------------------------------------------------------------------
# (a) the paper code's detached threshold, declared: reflip's own projection with
# threshold="detached" behind the adapter protocol.


class DetachedProjection:
    """reflip's l1-ball projection with the authors' detached threshold, as a library that
    documents that convention would be wrapped."""

    name = "reflip linf_project, threshold='detached'"
    conventions = {"linf_project.threshold": "detached"}

    def linf_project(self, w, radius=1.0):
        return linf_project(w, radius=radius, threshold="detached")

    def linf_project_vjp(self, w, y_bar, radius=1.0):
        from reflip._registry import REGISTRY

        record = REGISTRY["linf_project"]
        return record.bwd(record.fwd(w, radius=radius, threshold="detached")[1], y_bar)

    def linf_project_jvp(self, w, w_dot, radius=1.0):
        from reflip._registry import REGISTRY

        record = REGISTRY["linf_project"]
        return record.jvp(record.fwd(w, radius=radius, threshold="detached")[1], w_dot)


# ---------------------------------------------------------------------------------------------
# (b) and (g): Björck loops that run at least one step, or stop on the step size.


def _scaled(w, scaling="frobenius"):
    """The tall orientation of ``w`` divided by ``||w||_F`` (or ``sqrt(m n)``, or 1)."""
    wide = w.shape[-2] < w.shape[-1]
    a = w.mT if wide else w
    if scaling == "sqrt_mn":
        return a / math.sqrt(a.shape[-2] * a.shape[-1]), wide
    if scaling == "none":
        return a, wide
    squares = (a * a).sum(dim=(-2, -1), keepdim=True)
    ones = torch.ones_like(squares)
    return a / torch.where(squares > 0, torch.sqrt(torch.where(squares > 0, squares, ones)), ones), wide


def bjorck_at_least_one(w, n_iter, scaling="frobenius", detach_from=4):
    """Order-1 Björck whose loop runs ``max(n_iter, 1)`` times (a do-while), detaching the
    cubic term of every step from the ``detach_from``-th on to save memory."""
    a, wide = _scaled(w, scaling)
    for k in range(max(n_iter, 1)):
        cubic = a @ (a.mT @ a)
        a = 1.5 * a - 0.5 * (cubic.detach() if k >= detach_from else cubic)
    return a.mT if wide else a


def bjorck_step_tolerance(w, n_iter, scaling="frobenius", tol=1e-3):
    """Order-1 Björck stopping once a step moves the iterate by less than ``tol`` in the
    Frobenius norm (the stopping test on the step size)."""
    a, wide = _scaled(w, scaling)
    for _ in range(n_iter):
        new = 1.5 * a - 0.5 * a @ (a.mT @ a)
        small = bool(torch.linalg.matrix_norm(new - a).max() < tol)
        a = new
        if small:
            break
    return a.mT if wide else a


def at_least_one_adapter():
    return TorchAdapter(name="Björck, max(n_iter, 1) steps, late steps detached", bjorck=bjorck_at_least_one,
                        conventions={"bjorck.params": {"order": 1, "beta": 0.5}})


def step_tolerance_adapter():
    return TorchAdapter(name="Björck stopping on the step size", bjorck=bjorck_step_tolerance,
                        conventions={"bjorck.params": {"order": 1, "beta": 0.5}})


# ---------------------------------------------------------------------------------------------
# (c) a half-split MaxMin on torch.maximum / torch.minimum (SOC / orthogonium style): at a tie
# each entry receives (g1 + g2) / 2.


def half_split_max_min(x, num_units=None, axis=-1):
    x = x.movedim(axis, -1)
    a, b = x.chunk(2, dim=-1)
    return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=-1).movedim(-1, axis)


def half_split_adapter():
    return TorchAdapter(name="half-split MaxMin on torch.maximum/minimum", group_sort=half_split_max_min,
                        conventions={"group_sort.layout": "half_split_max_min"})


# ---------------------------------------------------------------------------------------------
# (f) a GroupSort layer written for NCHW activations: it sorts along dim 1 (channels) and
# ignores the axis it is given, so a 1-d input raises torch's IndexError.


def channel_group_sort(x, group_size, axis=-1):
    x = x.movedim(1, -1)  # IndexError "Dimension out of range" on a 1-d input
    y = torch.sort(x.reshape(*x.shape[:-1], -1, group_size), dim=-1, stable=True).values
    return y.reshape(x.shape).movedim(-1, 1)


def channel_adapter():
    return TorchAdapter(name="GroupSort over dim 1 (channels)", group_sort=channel_group_sort)


# ---------------------------------------------------------------------------------------------
# Item 5: a Newton-Schulz iteration with Muon's quintic coefficients used as "orthogonalization".

MUON = (3.4445, -4.7750, 2.0315)


def newton_schulz(w, n_iter, scaling="frobenius"):
    """Muon's quintic Newton-Schulz: ``X <- a X + b (X X^T) X + c (X X^T)^2 X`` after a
    Frobenius normalization. Tuned for speed, it leaves singular values in about [0.7, 1.2]."""
    a_, b_, c_ = MUON
    x, wide = _scaled(w, scaling)
    x = x.mT  # the wide orientation: the smaller Gram matrix X X^T
    for _ in range(n_iter):
        gram = x @ x.mT
        x = a_ * x + (b_ * gram + c_ * gram @ gram) @ x
    x = x.mT
    return x.mT if wide else x


def newton_schulz_adapter():
    return TorchAdapter(name="Muon Newton-Schulz as Björck", bjorck=newton_schulz,
                        conventions={"bjorck.params": {"order": 1, "beta": 0.5}})


def numpy_newton_schulz(w, n_iter):
    """The same iteration in NumPy (float64), for the safety oracle of tests."""
    a_, b_, c_ = MUON
    x = np.asarray(w, np.float64) / np.linalg.norm(w)
    for _ in range(n_iter):
        gram = x @ x.T
        x = a_ * x + (b_ * gram + c_ * gram @ gram) @ x
    return x
