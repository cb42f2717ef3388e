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

from .._backend import get_namespace
from .._validate import check_bool, check_floating, check_int, check_real

__all__ = ["Optimizer", "SGD", "Adam", "AggMo", "step_decay", "tree_map", "global_norm"]


def _check_tree(tree, name, like=None):
    """``tree`` must be a list (or tuple) of dicts of float32/float64 arrays; with ``like``,
    of the same structure and shapes as ``like``. ``TypeError``/``ValueError`` naming
    ``name``."""
    if not isinstance(tree, (list, tuple)) or not all(isinstance(d, dict) for d in tree):
        raise TypeError(f"{name} must be a list of dicts of arrays (one dict per layer), got "
                        f"{type(tree).__name__}")
    if like is not None and (len(tree) != len(like) or any(set(d) != set(e) for d, e in zip(tree, like, strict=True))):
        raise ValueError(f"{name} must have the structure of params (a list of {len(like)} dicts with the "
                         f"same keys)")
    for i, d in enumerate(tree):
        for k, a in d.items():
            where = f"{name}[{i}][{k!r}]"
            check_floating(a, get_namespace(**{where: a}), where)
            if like is not None and tuple(a.shape) != tuple(like[i][k].shape):
                raise ValueError(f"{where} must have the shape {tuple(like[i][k].shape)} of the "
                                 f"parameter, got {tuple(a.shape)}")


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leaf-wise to parameter trees of the same structure (list of dicts)."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    for name, t in (("tree", tree), *((f"rest[{j}]", r) for j, r in enumerate(rest))):
        if not isinstance(t, (list, tuple)) or not all(isinstance(d, dict) for d in t):
            raise TypeError(f"{name} must be a list of dicts (one per layer), got {type(t).__name__}")
        if len(t) != len(tree) or any(set(d) != set(e) for d, e in zip(t, tree, strict=True)):
            raise ValueError(f"{name} must have the structure of tree (a list of {len(tree)} dicts with "
                             f"the same keys)")
    return [{k: fn(d[k], *(r[i][k] for r in rest)) for k in d} for i, d in enumerate(tree)]


def global_norm(tree):
    """``sqrt(sum of squares of every leaf)`` as a Python float (one host read) [NN-9]; NaN
    when a leaf holds NaN [NN-14] (:func:`reflip.nn.train.fit` reads that as "stop")."""
    _check_tree(tree, "tree")
    # Summed on the device, read once: a read per leaf would synchronise a GPU once per
    # parameter array at every training step.
    total = None
    for d in tree:
        for a in d.values():
            s = get_namespace(a).sum(a * a)
            total = s if total is None else total + s
    return 0.0 if total is None else math.sqrt(float(total))


def _check_lr(lr):
    """A learning rate: a number > 0, or a schedule ``step -> lr`` (checked at every step)."""
    if callable(lr):
        return lr
    return check_real(lr, "lr", minimum=0.0, strict=True)


def _check_beta(beta, name):
    """A damping coefficient in ``[0, 1)``: ``beta = 1`` never forgets a gradient (the
    velocity grows without bound on a constant one)."""
    beta = check_real(beta, name, minimum=0.0)
    if beta >= 1:
        raise ValueError(f"{name} must be < 1, got {beta}")
    return beta


def _check_sequence(value, name):
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple or list of numbers, got {value!r} ({type(value).__name__})")
    return tuple(value)


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
    lr0 = check_real(lr0, "lr0", minimum=0.0, strict=True)
    factor = check_real(factor, "factor", minimum=0.0, strict=True, maximum=1.0)
    every = check_int(every, "every", minimum=1)

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
            return check_real(self._lr(step), f"lr (the schedule's value at step {step})", minimum=0.0,
                              strict=True)
        return self._lr

    def init(self, params):
        """The state before the first update: ``{"step": 0, ...}`` with zero buffers."""
        _check_tree(params, "params")
        return {"step": 0, **self._init_buffers(params)}

    def _init_buffers(self, params):
        return {}

    def update(self, params, grads, state):
        """``(new_params, new_state)``; neither input is modified."""
        _check_tree(params, "params")
        _check_tree(grads, "grads", like=params)
        if not isinstance(state, dict) or "step" not in state:
            raise TypeError(f"state must be the dict returned by init (or update), got {type(state).__name__}")
        return self._update(params, grads, state, self.lr(state["step"]))


def _zeros_like(tree):
    return tree_map(lambda a: get_namespace(a).zeros_like(a), tree)


class SGD(Optimizer):
    """SGD with (optionally Nesterov) momentum, PyTorch's convention [NN-8]:
    ``v <- mu v + g``; ``theta <- theta - lr v`` (Nesterov: ``- lr (g + mu v)``)."""

    def __init__(self, lr, momentum=0.0, nesterov=False):
        super().__init__(lr)
        self.momentum = _check_beta(momentum, "momentum")
        nesterov = check_bool(nesterov, "nesterov")
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
        betas = _check_sequence(betas, "betas")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = tuple(_check_beta(b, f"betas[{i}]") for i, b in enumerate(betas))
        self.eps = check_real(eps, "eps", minimum=0.0, strict=True)

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
        betas = _check_sequence(betas, "betas")
        if not betas:
            raise ValueError("betas must hold at least one damping coefficient")
        self.betas = tuple(_check_beta(b, f"betas[{i}]") for i, b in enumerate(betas))

    def _init_buffers(self, params):
        return {"velocities": [_zeros_like(params) for _ in self.betas]}

    def _update(self, params, grads, state, lr):
        held = state.get("velocities")
        if not isinstance(held, list) or len(held) != len(self.betas):
            got = f"{len(held)} velocities" if isinstance(held, list) else f"velocities {type(held).__name__}"
            raise ValueError(f"state must hold one velocity per beta ({len(self.betas)}, from this AggMo's "
                             f"init or update), got {got}")
        vs = [tree_map(lambda v, g, b=b: b * v + g, v, grads)
              for b, v in zip(self.betas, held, strict=True)]
        total = vs[0]
        for v in vs[1:]:
            total = tree_map(lambda a, b: a + b, total, v)
        scale = lr / len(self.betas)
        return tree_map(lambda p, d: p - scale * d, params, total), {"step": state["step"] + 1, "velocities": vs}
