"""Training loop: seeded mini-batches, gradient-norm clipping, a periodic evaluation callback
and a tqdm progress bar [NN-9].

::

    data = train.minibatches(x, labels, batch_size=128)
    params, history = train.fit(model, params, data, optim.Adam(1e-3), loss="multi_margin",
                                loss_options={"margin": 0.3}, epochs=10, seed=0)

A run is a function of ``(params, data, optimizer, seed)``: the only randomness is the
``numpy.random.Generator`` seeded from ``seed`` that ``fit`` hands to ``data``, so the same
call gives the same parameters (bit for bit on a deterministic backend).

A non-finite loss or gradient stops the run, naming its cause [NN-14]: NaN/inf in the batch
(``ValueError`` naming the array, the step and the count), in the initial parameters
(``ValueError`` naming ``params``), or a diverging optimisation on finite data
(``FloatingPointError``: lower the learning rate).
"""
from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass, field

import numpy as np
from array_api_compat import is_array_api_obj

from .._backend import get_namespace
from .._validate import MAX_ITERATIONS, check_bool, check_choice, check_int, check_real, check_seed
from . import losses as _losses
from .model import check_model
from .optim import Optimizer, global_norm, tree_map

__all__ = ["MAX_STEPS", "fit", "History", "Minibatches", "minibatches", "supervised_objective", "kr_objective"]


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
            raise ValueError("arrays: minibatches needs at least one array")
        self.xp = get_namespace(**{f"arrays[{i}]": a for i, a in enumerate(arrays)})
        if arrays[0].ndim == 0:
            raise ValueError("arrays[0] must have a first (example) dimension, got a 0-d array")
        n = arrays[0].shape[0]
        for i, a in enumerate(arrays):
            if a.ndim == 0 or a.shape[0] != n:
                raise ValueError(f"arrays[{i}] must have {n} rows like arrays[0], got shape {tuple(a.shape)}")
        if n == 0:
            raise ValueError("arrays must hold at least one example, got 0 rows")
        batch_size = check_int(batch_size, "batch_size", minimum=1, maximum=n)
        self.arrays, self.n, self.batch_size = arrays, n, batch_size
        self.shuffle, self.drop_last = check_bool(shuffle, "shuffle"), check_bool(drop_last, "drop_last")
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
    check_model(model)
    check_choice(loss, "loss", tuple(_losses.LOSSES))
    fwd, bwd = _losses.LOSSES[loss]
    _check_loss_options(loss, fwd, loss_options)

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
    check_model(model)

    def objective(params, batch):
        x_p, x_q = batch
        xp = get_namespace(x_p=x_p, x_q=x_q)
        f, res = model.forward(params, xp.concat([x_p, x_q], axis=0))
        n = x_p.shape[0]
        value, loss_res = _losses.kr_dual_fwd(f[:n, ...], f[n:, ...])
        f_p_bar, f_q_bar = _losses.kr_dual_bwd(loss_res, 1.0)
        return value, model.backward(res, xp.concat([f_p_bar, f_q_bar], axis=0))[1]

    return objective


def _check_loss_options(loss, fwd, options):
    """Unknown options are a ``TypeError`` naming them; values are checked now, by the loss
    itself on a 1 x 2 probe, not at the first training step."""
    allowed = [n for n, prm in inspect.signature(fwd).parameters.items() if prm.kind is prm.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"loss {loss!r} got unexpected option(s) {unknown}; its options are {allowed or 'none'}")
    fwd(np.zeros((1, 2)), np.zeros(1, dtype=np.int64), **options)


#: What the arrays of a batch are called in messages, per named loss.
_BATCH_NAMES = {"kr_dual": ("x_p", "x_q")}


def _nonfinite_data(batch, loss):
    """``(name, count)`` of the first floating array of ``batch`` holding NaN or inf, or
    ``None``. Read only after a non-finite loss: a check at every step would cost a host read
    per batch."""
    arrays = batch if isinstance(batch, (tuple, list)) else (batch,)
    names = _BATCH_NAMES.get(loss, ("x", "labels")) if isinstance(loss, str) else ()
    for i, a in enumerate(arrays):
        if not is_array_api_obj(a):
            continue
        xp = get_namespace(a)
        if not xp.isdtype(a.dtype, ("real floating", "complex floating")):
            continue
        count = int(xp.sum(xp.astype(~xp.isfinite(a), xp.int64)))
        if count:
            name = names[i] if i < len(names) else f"batch[{i}]"
            return f"{name} (batch[{i}], shape {tuple(a.shape)})", count
    return None


def _nonfinite_params(params):
    """The first parameter array holding NaN or inf, named ``params[i]['W']``, or ``None``."""
    for i, d in enumerate(params):
        for k, a in d.items():
            xp = get_namespace(a)
            if not bool(xp.all(xp.isfinite(a))):
                return f"params[{i}][{k!r}]"
    return None


#: Upper bound of ``steps`` (and of ``epochs * steps_per_epoch``): ten million updates, days of
#: training for the smallest model; a larger count is a typo that would run until interrupted.
MAX_STEPS = 10_000_000


def _named_step(objective, params, batch, step, loss):
    """One step of a named loss. The model, its parameters and the loss options are checked
    before the loop, so a TypeError/ValueError here comes from the batch: the message says so."""
    names = ", ".join(_BATCH_NAMES.get(loss, ("x", "labels")))
    try:
        return objective(params, batch)
    except (TypeError, ValueError) as exc:
        bad = _nonfinite_params(params)
        if bad is not None and step == 0:
            raise ValueError(f"params: {bad} holds NaN or inf before the first update ({exc}); pass "
                             f"finite initial parameters") from exc
        if bad is not None:
            # Finite before the loop (or step 0 would have said so): an update made them so.
            raise FloatingPointError(f"step {step}: {bad} became NaN or inf after an update ({exc}); the "
                                     f"optimisation diverged: lower the learning rate or set clip_norm") from exc
        raise type(exc)(f"data: the batch of step {step} (expected a pair ({names})) was refused: {exc}") from exc


def _raise_nonfinite(step, value, norm, batch, params, loss):
    """Name the cause of a non-finite loss or gradient [NN-14]: the data when the batch holds
    NaN/inf (no learning rate fixes that), the parameters when they were non-finite from the
    start, the optimisation otherwise."""
    what = f"step {step}: loss = {value}, gradient norm = {norm}"
    bad = _nonfinite_data(batch, loss)
    if bad is not None:
        name, count = bad
        raise ValueError(f"data: {what} because the batch of step {step} holds {count} non-finite "
                         f"(NaN or inf) entr{'y' if count == 1 else 'ies'} in {name}; clean or "
                         f"drop those examples")
    bad = _nonfinite_params(params)
    if bad is not None and step == 0:
        raise ValueError(f"params: {what} because {bad} holds NaN or inf before the first update; "
                         f"pass finite initial parameters")
    raise FloatingPointError(f"{what}; the data of this batch are finite, so the optimisation "
                             f"diverged: lower the learning rate or set clip_norm")


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
    ValueError
        The loss or the gradient norm is NaN or infinite and the batch holds NaN/inf (the
        message names the array, the step and the count of non-finite entries), or the initial
        parameters do [NN-14]; a bad argument.
    FloatingPointError
        The loss or the gradient norm became NaN or infinite on finite data (the step is
        named): the optimisation diverged.
    """
    from tqdm import tqdm

    if (steps is None) == (epochs is None):
        raise ValueError("steps, epochs: give exactly one of steps and epochs")
    if epochs is not None:
        per_epoch = getattr(data, "steps_per_epoch", None)
        if per_epoch is None:
            raise ValueError("epochs needs data that knows its steps_per_epoch (train.minibatches); pass steps instead")
        epochs = check_int(epochs, "epochs", minimum=1, maximum=MAX_ITERATIONS)
        steps = epochs * per_epoch
        # The total, not the epoch count, is what runs: bounded like any iteration count.
        if steps > MAX_STEPS:
            raise ValueError(f"epochs * steps_per_epoch must be <= {MAX_STEPS}, got {epochs} * {per_epoch}")
    steps = check_int(steps, "steps", minimum=1, maximum=MAX_STEPS)
    clip_norm = check_real(clip_norm, "clip_norm", minimum=0.0, strict=True, allow_none=True)
    seed = check_seed(seed)
    progress = check_bool(progress, "progress")
    check_model(model)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a reflip.nn.optim optimizer (SGD, Adam, AggMo...), got "
                        f"{type(optimizer).__name__}")
    if eval_every is not None:
        eval_every = check_int(eval_every, "eval_every", minimum=1)
        if callback is None:
            raise ValueError("eval_every needs a callback (callback(step, params, history))")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if post_update is not None and not callable(post_update):
        raise TypeError(f"post_update must be callable or None, got {type(post_update).__name__}")
    if loss_options is not None and not isinstance(loss_options, dict):
        raise TypeError(f"loss_options must be a dict or None, got {type(loss_options).__name__}")
    if callable(loss):
        if loss_options:
            raise ValueError("loss_options apply to a named loss; a callable loss takes its own options")
        objective = loss
    elif loss == "kr_dual":
        objective = kr_objective(model)
    else:
        check_choice(loss, "loss", (*_losses.LOSSES, "kr_dual"))
        objective = supervised_objective(model, loss, **(loss_options or {}))
    if not callable(loss):
        # Checked here so that an error raised by a named loss on a batch is the batch's fault.
        model.check_params(params)

    rng = np.random.default_rng(seed)
    try:
        batches = iter(data(rng) if callable(data) else data)
    except TypeError:
        raise TypeError(f"data must be an iterable of batches or a callable rng -> iterable, got "
                        f"{type(data).__name__}") from None
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
            if callable(loss):
                value, grads = objective(params, batch)
            else:
                value, grads = _named_step(objective, params, batch, step, loss)
            value, norm = float(value), global_norm(grads)
            if not (math.isfinite(value) and math.isfinite(norm)):
                _raise_nonfinite(step, value, norm, batch, params, loss)
            if clip_norm is not None and norm > clip_norm:
                factor = clip_norm / norm
                grads = tree_map(lambda g, f=factor: g * f, grads)
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
