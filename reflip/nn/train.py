"""Training loop: seeded mini-batches, gradient-norm clipping, a periodic evaluation callback
and a tqdm progress bar [NN-9].

::

    data = train.minibatches(x, labels, batch_size=128)
    params, history = train.fit(model, params, data, optim.Adam(1e-3), loss="multi_margin",
                                loss_options={"margin": 0.3}, epochs=10, seed=0)

A run is a function of ``(params, data, optimizer, seed)``: the only randomness is the
``numpy.random.Generator`` seeded from ``seed`` that ``fit`` hands to ``data``, so the same
call gives the same parameters (bit for bit on a deterministic backend).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from .._backend import get_namespace
from . import losses as _losses
from .optim import global_norm, tree_map

__all__ = ["fit", "History", "Minibatches", "minibatches", "supervised_objective", "kr_objective"]


@dataclass
class History:
    """What :func:`fit` recorded, one entry per step (floats read back from the device).

    ``loss``: the objective before the step's update; ``grad_norm``: the global l2 norm of the
    gradient before clipping; ``lr``: the learning rate used; ``evals``: ``(step, result)`` for
    every callback call that returned something (``step`` = updates done so far);
    ``state``: the optimizer state after the last step (pass it back as ``state=`` to resume).
    """

    loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    state: dict | None = None


class Minibatches:
    """Shuffled mini-batches of ``arrays`` (same first dimension), epoch after epoch.

    Calling it with a ``numpy.random.Generator`` returns an endless iterator of tuples of
    arrays; every epoch draws a fresh permutation from that generator (on the host) and
    gathers with ``xp.take``, so batches stay on the arrays' device.

    Parameters
    ----------
    *arrays : arrays with equal ``shape[0]``
    batch_size : int >= 1, at most the number of examples
    shuffle : bool, default True
    drop_last : bool, default True
        Drop the last, incomplete batch of every epoch (all batches then have the same size).
    """

    def __init__(self, *arrays, batch_size, shuffle=True, drop_last=True):
        if not arrays:
            raise ValueError("minibatches needs at least one array")
        self.xp = get_namespace(*arrays)
        n = arrays[0].shape[0]
        for i, a in enumerate(arrays):
            if a.ndim == 0 or a.shape[0] != n:
                raise ValueError(f"arrays[{i}] must have {n} rows like arrays[0], got shape {tuple(a.shape)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be an integer in [1, {n}] (the number of examples), got {batch_size!r}")
        self.arrays, self.n, self.batch_size = arrays, n, int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.steps_per_epoch = n // self.batch_size if drop_last else -(-n // self.batch_size)

    def __call__(self, rng):
        xp = self.xp
        while True:
            order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            for s in range(self.steps_per_epoch):
                idx = xp.asarray(order[s * self.batch_size:(s + 1) * self.batch_size])
                yield tuple(xp.take(a, idx, axis=0) for a in self.arrays)


def minibatches(*arrays, batch_size, shuffle=True, drop_last=True):
    """:class:`Minibatches` (see there)."""
    return Minibatches(*arrays, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)


def supervised_objective(model, loss="cross_entropy", **loss_options):
    """``objective(params, (x, labels)) -> (loss, grads)`` for a classifier: forward, a loss of
    :data:`reflip.nn.losses.LOSSES` (``"multi_margin"`` takes ``margin=``), backward [NN-7]."""
    if loss not in _losses.LOSSES:
        raise ValueError(f"loss must be one of {sorted(_losses.LOSSES) + ['kr_dual']} or a callable, got {loss!r}")
    fwd, bwd = _losses.LOSSES[loss]

    def objective(params, batch):
        x, labels = batch
        logits, res = model.forward(params, x)
        value, loss_res = fwd(logits, labels, **loss_options)
        return value, model.backward(res, bwd(loss_res, 1.0))[1]

    return objective


def kr_objective(model):
    """``objective(params, (x_p, x_q)) -> (loss, grads)`` for a Wasserstein critic: the
    Kantorovich-Rubinstein dual loss of :func:`reflip.nn.losses.kr_dual_fwd` on one forward
    pass over both samples [NN-7]."""

    def objective(params, batch):
        x_p, x_q = batch
        xp = get_namespace(x_p, x_q)
        f, res = model.forward(params, xp.concat([x_p, x_q], axis=0))
        n = x_p.shape[0]
        value, loss_res = _losses.kr_dual_fwd(f[:n, ...], f[n:, ...])
        f_p_bar, f_q_bar = _losses.kr_dual_bwd(loss_res, 1.0)
        return value, model.backward(res, xp.concat([f_p_bar, f_q_bar], axis=0))[1]

    return objective


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def fit(model, params, data, optimizer, *, loss="cross_entropy", loss_options=None, steps=None,
        epochs=None, seed=0, clip_norm=None, eval_every=None, callback=None, post_update=None,
        state=None, progress=True, desc="train"):
    """Train ``params`` of ``model``; returns ``(params, history)`` [NN-9].

    Parameters
    ----------
    model : Sequential
    params : list of dicts
        Not modified.
    data : iterable of batches, or callable ``rng -> iterable of batches``
        A callable (e.g. :func:`minibatches`) receives ``numpy.random.default_rng(seed)``:
        that makes the run reproducible. A batch is ``(x, labels)`` for classification losses,
        ``(x_p, x_q)`` for ``"kr_dual"``, anything a callable ``loss`` accepts.
    optimizer : reflip.nn.optim.Optimizer
    loss : {"cross_entropy", "multi_margin", "kr_dual"} or callable
        A callable is ``loss(params, batch) -> (value, grads)``.
    loss_options : dict, optional
        Keyword arguments of the named loss (``{"margin": 0.3}`` for ``"multi_margin"``).
    steps : int, or epochs : int
        Number of updates; ``epochs`` needs ``data`` with ``steps_per_epoch``
        (:class:`Minibatches`). Exactly one of the two.
    seed : int
    clip_norm : float > 0, optional
        Rescale the gradient to global l2 norm ``clip_norm`` when it is longer:
        ``g <- g min(1, clip_norm / ||g||)``.
    eval_every : int, optional
        Call ``callback(step, params, history)`` every ``eval_every`` updates; without it the
        callback runs once, at the end. A non-``None`` result is appended to
        ``history.evals`` (a dict of numbers is also shown on the progress bar).
    post_update : callable ``params -> params``, optional
        Applied after every update (e.g. a projection of the raw weights, as the paper's
        code does for l_inf networks).
    state : dict, optional
        Optimizer state to resume from (``history.state`` of a previous run).
    progress : bool, default True
        Show a tqdm progress bar with the running loss.

    Raises
    ------
    FloatingPointError
        The loss or the gradient norm became NaN or infinite (the step is named).
    """
    from tqdm import tqdm

    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps and epochs")
    if epochs is not None:
        per_epoch = getattr(data, "steps_per_epoch", None)
        if per_epoch is None:
            raise ValueError("epochs needs data that knows its steps_per_epoch (train.minibatches); pass steps instead")
        steps = _check_count(epochs, "epochs") * per_epoch
    steps = _check_count(steps, "steps")
    if clip_norm is not None and not (isinstance(clip_norm, numbers.Real) and math.isfinite(clip_norm) and clip_norm > 0):
        raise ValueError(f"clip_norm must be None or a finite number > 0, got {clip_norm!r}")
    if eval_every is not None:
        eval_every = _check_count(eval_every, "eval_every")
        if callback is None:
            raise ValueError("eval_every needs a callback (callback(step, params, history))")
    if callable(loss):
        if loss_options:
            raise ValueError("loss_options apply to a named loss; a callable loss takes its own options")
        objective = loss
    elif loss == "kr_dual":
        objective = kr_objective(model)
    else:
        objective = supervised_objective(model, loss, **(loss_options or {}))

    rng = np.random.default_rng(seed)
    batches = iter(data(rng) if callable(data) else data)
    state = optimizer.init(params) if state is None else state
    history = History()
    bar = tqdm(total=steps, disable=not progress, desc=desc, leave=False)
    refresh = max(1, steps // 100)
    try:
        for step in range(steps):
            try:
                batch = next(batches)
            except StopIteration:
                raise ValueError(f"data ran out after {step} batches; {steps} steps were asked for") from None
            value, grads = objective(params, batch)
            value, norm = float(value), global_norm(grads)
            if not (math.isfinite(value) and math.isfinite(norm)):
                raise FloatingPointError(f"step {step}: loss = {value}, gradient norm = {norm}; lower the "
                                         f"learning rate or set clip_norm")
            if clip_norm is not None and norm > clip_norm:
                factor = clip_norm / norm
                grads = tree_map(lambda g: g * factor, grads)
            history.loss.append(value)
            history.grad_norm.append(norm)
            history.lr.append(optimizer.lr(state["step"]))
            params, state = optimizer.update(params, grads, state)
            if post_update is not None:
                params = post_update(params)
            done = step + 1
            if step % refresh == 0 or done == steps:
                bar.set_postfix(loss=f"{value:.4g}", refresh=False)
            bar.update(1)
            if callback is not None and (done == steps or (eval_every and done % eval_every == 0)):
                result = callback(done, params, history)
                if result is not None:
                    history.evals.append((done, result))
                    if isinstance(result, dict):
                        bar.set_postfix({k: f"{v:.4g}" for k, v in result.items()
                                         if isinstance(v, numbers.Real)}, refresh=False)
    finally:
        bar.close()
    history.state = state
    return params, history
