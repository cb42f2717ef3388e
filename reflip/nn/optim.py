"""Optimizers on parameter trees (lists of dicts of arrays), any backend, functional [NN-8]::

    opt = optim.Adam(lr=1e-3)
    state = opt.init(params)
    params, state = opt.update(params, grads, state)   # new arrays; inputs are not modified

- :class:`SGD`: ``v <- mu v + g``, ``theta <- theta - lr v`` (or ``g + mu v`` with Nesterov):
  PyTorch's ``torch.optim.SGD`` without dampening or weight decay.
- :class:`Adam` (Kingma & Ba 2015): bias-corrected first and second moments, as
  ``torch.optim.Adam``.
- :class:`AggMo` (Lucas, Sun, Zemel & Grosse 2019, *Aggregated Momentum*), the paper code's
  optimizer: ``K`` heavy-ball velocities ``v_i <- beta_i v_i + g`` and
  ``theta <- theta - (lr / K) sum_i v_i``.

``lr`` is a number or a schedule ``step -> lr`` (:func:`step_decay`), ``step`` counting the
updates already made (0 for the first).
"""
from __future__ import annotations

import math
import numbers

from .._backend import get_namespace

__all__ = ["Optimizer", "SGD", "Adam", "AggMo", "step_decay", "tree_map", "global_norm"]


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leaf-wise to parameter trees of the same structure (list of dicts)."""
    return [{k: fn(d[k], *(r[i][k] for r in rest)) for k in d} for i, d in enumerate(tree)]


def global_norm(tree):
    """``sqrt(sum of squares of every leaf)`` as a Python float (one host read) [NN-9]."""
    # Summed on the device, read once: a read per leaf would synchronise a GPU once per
    # parameter array at every training step.
    total = None
    for d in tree:
        for a in d.values():
            s = get_namespace(a).sum(a * a)
            total = s if total is None else total + s
    return 0.0 if total is None else math.sqrt(float(total))


def _check_positive(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or (
            value < 0 if allow_zero else value <= 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _check_lr(lr):
    if callable(lr):
        return lr
    return _check_positive(lr, "lr")


def _check_beta(beta, name):
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 <= beta < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {beta!r}")
    return float(beta)


def step_decay(lr0, *, factor=0.1, every):
    """Schedule ``step -> lr0 * factor ** (step // every)`` (step decay) [NN-8].

    Parameters
    ----------
    lr0 : float > 0
    factor : float in (0, 1]
    every : int >= 1
        Steps between decays (``every = epochs_per_decay * steps_per_epoch`` for an epoch
        schedule).
    """
    lr0 = _check_positive(lr0, "lr0")
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor <= 1:
        raise ValueError(f"factor must be a number in (0, 1], got {factor!r}")
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")

    def schedule(step):
        return lr0 * factor ** (int(step) // every)

    schedule.__name__ = f"step_decay(lr0={lr0}, factor={factor}, every={every})"
    return schedule


class Optimizer:
    """Base class: ``state = {"step": int, ...buffers}``; :meth:`lr` reads the schedule."""

    def __init__(self, lr):
        self._lr = _check_lr(lr)

    def lr(self, step):
        """The learning rate of update number ``step`` (0-based)."""
        if callable(self._lr):
            return _check_positive(self._lr(step), f"lr schedule at step {step}")
        return self._lr

    def init(self, params):
        return {"step": 0, **self._init_buffers(params)}

    def _init_buffers(self, params):
        return {}

    def update(self, params, grads, state):
        """``(new_params, new_state)``; neither input is modified."""
        if len(grads) != len(params) or any(set(g) != set(p) for g, p in zip(grads, params)):
            raise ValueError("grads must have the structure of params (a list of dicts with the same keys)")
        return self._update(params, grads, state, self.lr(state["step"]))


def _zeros_like(tree):
    return tree_map(lambda a: get_namespace(a).zeros_like(a), tree)


class SGD(Optimizer):
    """SGD with (optionally Nesterov) momentum, PyTorch's convention [NN-8]:
    ``v <- mu v + g``; ``theta <- theta - lr v`` (Nesterov: ``- lr (g + mu v)``)."""

    def __init__(self, lr, momentum=0.0, nesterov=False):
        super().__init__(lr)
        self.momentum = _check_beta(momentum, "momentum")
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov

    def _init_buffers(self, params):
        return {"velocity": _zeros_like(params)} if self.momentum else {}

    def _update(self, params, grads, state, lr):
        if not self.momentum:
            return tree_map(lambda p, g: p - lr * g, params, grads), {"step": state["step"] + 1}
        mu = self.momentum
        v = tree_map(lambda v, g: mu * v + g, state["velocity"], grads)
        direction = tree_map(lambda g, v: g + mu * v, grads, v) if self.nesterov else v
        return tree_map(lambda p, d: p - lr * d, params, direction), {"step": state["step"] + 1, "velocity": v}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam`` [NN-8]: ``m <- b1 m + (1 - b1) g``,
    ``s <- b2 s + (1 - b2) g^2``, ``theta <- theta - lr m_hat / (sqrt(s_hat) + eps)`` with
    ``m_hat = m / (1 - b1^t)``, ``s_hat = s / (1 - b2^t)``."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(lr)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = tuple(_check_beta(b, f"betas[{i}]") for i, b in enumerate(betas))
        self.eps = _check_positive(eps, "eps")

    def _init_buffers(self, params):
        return {"m": _zeros_like(params), "s": _zeros_like(params)}

    def _update(self, params, grads, state, lr):
        b1, b2 = self.betas
        t = state["step"] + 1
        m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
        s = tree_map(lambda s, g: b2 * s + (1 - b2) * (g * g), state["s"], grads)
        c1, c2 = 1 - b1**t, math.sqrt(1 - b2**t)

        def step(p, m, s):
            return p - (lr / c1) * m / (get_namespace(s).sqrt(s) / c2 + self.eps)

        return tree_map(step, params, m, s), {"step": t, "m": m, "s": s}


class AggMo(Optimizer):
    """Aggregated Momentum (Lucas, Sun, Zemel & Grosse 2019) [NN-8]: ``v_i <- beta_i v_i + g``
    for every ``beta_i``, ``theta <- theta - (lr / K) sum_i v_i``. With one beta it is
    :class:`SGD` with that momentum. The paper's Wasserstein experiments use
    ``lr = 0.01, betas = (0, 0.9, 0.99)``."""

    def __init__(self, lr, betas=(0.0, 0.9, 0.99)):
        super().__init__(lr)
        betas = tuple(betas)
        if not betas:
            raise ValueError("betas must hold at least one damping coefficient")
        self.betas = tuple(_check_beta(b, f"betas[{i}]") for i, b in enumerate(betas))

    def _init_buffers(self, params):
        return {"velocities": [_zeros_like(params) for _ in self.betas]}

    def _update(self, params, grads, state, lr):
        vs = [tree_map(lambda v, g, b=b: b * v + g, v, grads) for b, v in zip(self.betas, state["velocities"])]
        total = vs[0]
        for v in vs[1:]:
            total = tree_map(lambda a, b: a + b, total, v)
        scale = lr / len(self.betas)
        return tree_map(lambda p, d: p - scale * d, params, total), {"step": state["step"] + 1, "velocities": vs}
