"""Losses [NN-7] against finite differences and PyTorch, optimizers [NN-8] against torch.optim
and the closed form of the velocities, and the training loop [NN-9]: a toy task is learnt,
runs are reproducible, clipping rescales, the callback runs when it should."""
import io
import math
import re

import numpy as np
import pytest

from reflip import nn, to_numpy
from reflip.nn import lipschitz, losses, optim, train
from reflip.testing.nn_checks import richardson
from reflip.tolerances import fd_rtol

RNG = np.random.default_rng(7)


def _fd_grad_check(fwd, bwd, f, *args, seed=0, **kw):
    """Dot-product test of a loss's backward pass against an extrapolated central difference
    (float64) [NN-2]."""
    d = np.random.default_rng(seed).standard_normal(f.shape)
    g = bwd(fwd(f, *args, **kw)[1], 0.7)
    fd = 0.7 * richardson(lambda t: float(fwd(f + t * d, *args, **kw)[0]), 1e-4)
    return abs(float(np.sum(g * d)) - fd) / max(abs(fd), 1e-12)


@pytest.mark.parametrize("margin", [0.0, 0.3, 1.0])
def test_multi_margin_against_torch_and_differences(margin):
    """[NN-7] value and gradient equal torch's multi_margin_loss(p=1, margin); backward passes
    the dot-product test."""
    torch = pytest.importorskip("torch")
    logits = RNG.standard_normal((9, 5))
    labels = RNG.integers(0, 5, 9)
    value, res = losses.multi_margin_fwd(logits, labels, margin=margin)
    t = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.multi_margin_loss(t, torch.tensor(labels), p=1, margin=margin)
    ref.backward(torch.tensor(0.7, dtype=torch.float64))
    assert float(value) == pytest.approx(ref.item(), rel=1e-14, abs=1e-15)
    np.testing.assert_allclose(losses.multi_margin_bwd(res, 0.7), t.grad.numpy(), rtol=1e-14, atol=1e-16)
    assert _fd_grad_check(losses.multi_margin_fwd, losses.multi_margin_bwd, logits, labels, margin=margin) <= fd_rtol()


def test_cross_entropy_against_torch_and_differences():
    """[NN-7] equals torch's cross_entropy; stable for huge logits; backward passes the
    dot-product test."""
    torch = pytest.importorskip("torch")
    logits = RNG.standard_normal((9, 4)) * 3
    labels = RNG.integers(0, 4, 9)
    value, res = losses.cross_entropy_fwd(logits, labels)
    t = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(t, torch.tensor(labels))
    ref.backward()
    assert float(value) == pytest.approx(ref.item(), rel=1e-14)
    np.testing.assert_allclose(losses.cross_entropy_bwd(res, 1.0), t.grad.numpy(), rtol=1e-12, atol=1e-16)
    assert _fd_grad_check(losses.cross_entropy_fwd, losses.cross_entropy_bwd, logits, labels) <= fd_rtol()
    assert np.isfinite(float(losses.cross_entropy(logits * 1e300, labels)))


def test_kr_dual():
    """[NN-7] for P = Q translated by d and the critic f(x) = <u, x>, u = d / ||d||, the
    estimate -loss is ||d|| (the W1 of a translation) plus the samples' mean difference along
    u; gradients -1/n_p and 1/n_q; dot-product test."""
    x = RNG.standard_normal((40, 3))
    d = np.array([0.3, -0.4, 1.2])
    u = d / np.linalg.norm(d)
    value, res = losses.kr_dual_fwd((x + d) @ u, x[:30] @ u)
    # E_P f - E_Q f = <u, d> + the difference of the two samples' means along u.
    expected = np.linalg.norm(d) + np.mean(x @ u) - np.mean(x[:30] @ u)
    assert -float(value) == pytest.approx(expected, rel=1e-14)
    f_p_bar, f_q_bar = losses.kr_dual_bwd(res, 2.0)
    assert np.all(f_p_bar == -2.0 / 40) and np.all(f_q_bar == 2.0 / 30)
    f_p, f_q = RNG.standard_normal((5, 1)), RNG.standard_normal((3, 1))
    assert _fd_grad_check(lambda f, g: losses.kr_dual_fwd(f, g),
                          lambda r, v: losses.kr_dual_bwd(r, v)[0], f_p, f_q) <= fd_rtol()
    with pytest.raises(ValueError, match=r"f_q must have shape \(n,\) or \(n, 1\)"):
        losses.kr_dual_fwd(f_p, np.ones((3, 2)))


def test_loss_arguments_checked():
    logits = RNG.standard_normal((3, 4))
    with pytest.raises(ValueError, match=r"margin must be >= 0.0, got -1.0"):
        losses.multi_margin_fwd(logits, np.array([0, 1, 2]), margin=-1.0)
    with pytest.raises(ValueError, match=r"logits must have shape \(batch, classes\) with batch >= 1 and classes >= 2"):
        losses.cross_entropy_fwd(logits[:, :1], np.array([0, 0, 0]))
    with pytest.raises(TypeError, match="value_bar must be a real number, got 'one'"):
        losses.cross_entropy_bwd(losses.cross_entropy_fwd(logits, np.array([0, 1, 2]))[1], "one")


# ----------------------------------------------------------------------------------------------
# Optimizers [NN-8]


def _run(opt, params, grads):
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(params, g, state)
    return params, state


def _problem(steps=6):
    rng = np.random.default_rng(1)
    params = [{"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(3)}, {}]
    grads = [[{"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(3)}, {}] for _ in range(steps)]
    return params, grads


@pytest.mark.parametrize("ours, theirs", [
    (lambda: optim.SGD(0.1), lambda ps, torch: torch.optim.SGD(ps, lr=0.1)),
    (lambda: optim.SGD(0.1, momentum=0.9), lambda ps, torch: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    (lambda: optim.SGD(0.1, momentum=0.5, nesterov=True),
     lambda ps, torch: torch.optim.SGD(ps, lr=0.1, momentum=0.5, nesterov=True)),
    (lambda: optim.Adam(0.05), lambda ps, torch: torch.optim.Adam(ps, lr=0.05)),
    (lambda: optim.Adam(0.05, betas=(0.5, 0.9), eps=1e-3),
     lambda ps, torch: torch.optim.Adam(ps, lr=0.05, betas=(0.5, 0.9), eps=1e-3)),
])
def test_optimizers_match_torch(ours, theirs):
    """[NN-8] step by step equal to torch.optim (an independent implementation)."""
    torch = pytest.importorskip("torch")
    params, grads = _problem()
    got, _ = _run(ours(), params, grads)
    tensors = [torch.tensor(params[0][k], requires_grad=True) for k in ("W", "b")]
    opt = theirs(tensors, torch)
    for g in grads:
        for t, k in zip(tensors, ("W", "b"), strict=True):
            t.grad = torch.tensor(g[0][k])
        opt.step()
    for t, k in zip(tensors, ("W", "b"), strict=True):
        np.testing.assert_allclose(got[0][k], t.detach().numpy(), rtol=1e-13, atol=1e-14)


def test_aggmo_velocities_and_reductions():
    """[NN-8] (a) v_t = sum_s beta^(t-s) g_s for every beta; (b) one beta, or equal betas, is
    SGD with momentum."""
    params, grads = _problem()
    betas = (0.0, 0.9, 0.99)
    _, state = _run(optim.AggMo(0.01, betas), params, grads)
    t = len(grads)
    for b, v in zip(betas, state["velocities"], strict=True):
        closed = sum(b ** (t - 1 - s) * grads[s][0]["W"] for s in range(t))
        np.testing.assert_allclose(v[0]["W"], closed, rtol=1e-13)
    sgd, _ = _run(optim.SGD(0.01, momentum=0.9), params, grads)
    for agg in (optim.AggMo(0.01, (0.9,)), optim.AggMo(0.01, (0.9, 0.9, 0.9))):
        np.testing.assert_allclose(_run(agg, params, grads)[0][0]["W"], sgd[0]["W"], rtol=1e-14)


def test_step_decay_and_schedules():
    """[NN-8] lr0 * factor ** (step // every), used by the optimizer at the right step."""
    schedule = optim.step_decay(0.1, factor=0.5, every=3)
    assert [schedule(s) for s in range(7)] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]
    params, grads = _problem(5)
    got, state = _run(optim.SGD(schedule), params, grads)
    expected = params[0]["W"] - sum(schedule(s) * grads[s][0]["W"] for s in range(5))
    np.testing.assert_allclose(got[0]["W"], expected, rtol=1e-14)
    assert state["step"] == 5
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        optim.step_decay(0.1, every=0)
    with pytest.raises(ValueError, match=r"lr must be > 0.0, got -1.0"):
        optim.Adam(-1.0)
    with pytest.raises(ValueError, match=r"betas\[1\] must be < 1, got 1.0"):
        optim.AggMo(0.1, (0.0, 1.0))
    with pytest.raises(ValueError, match="grads must have the structure of params"):
        optim.SGD(0.1).update(params, grads[0][:1], optim.SGD(0.1).init(params))


# ----------------------------------------------------------------------------------------------
# Training loop [NN-9]


def _toy():
    """XOR-like quadrants: not linearly separable, learnt by a small MaxMin Björck net."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential([nn.Dense(2, 16, "bjorck", n_iter=8), nn.Activation("max_min"),
                           nn.Dense(16, 16, "bjorck", n_iter=8), nn.Activation("max_min"),
                           nn.Dense(16, 2, "bjorck", n_iter=8), nn.Scale(4.0)])
    return model, x, y


def test_training_learns_a_toy_task_reproducibly():
    """[NN-9] the hinge loss falls and accuracy rises on a toy task; the same seed gives the
    same parameters bit for bit, another seed different ones; the callback runs every
    eval_every steps and at the end."""
    model, x, y = _toy()
    params = model.init(seed=0)
    calls = []

    def callback(step, p, history):
        calls.append(step)
        return {"accuracy": float(np.mean(model(p, x).argmax(1) == y))}

    kw = dict(loss="multi_margin", loss_options={"margin": 0.3}, steps=90, progress=False)
    data = train.minibatches(x, y, batch_size=32)
    trained, history = train.fit(model, params, data, optim.Adam(0.02), seed=1, eval_every=40, callback=callback, **kw)
    assert calls == [40, 80, 90] and [s for s, _ in history.evals] == calls
    assert np.mean(history.loss[-10:]) < 0.5 * np.mean(history.loss[:10])
    assert history.evals[-1][1]["accuracy"] > 0.85
    again, _ = train.fit(model, params, data, optim.Adam(0.02), seed=1, **kw)
    other, _ = train.fit(model, params, data, optim.Adam(0.02), seed=2, **kw)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(trained, again, strict=True) for k in a)
    assert not np.array_equal(trained[0]["W"], other[0]["W"])


def test_training_steps_agree_on_every_backend(backend):
    """[NN-9] three seeded training steps (mini-batches, loss, backward, Adam) give the NumPy
    parameters on every backend."""
    model, x, y = _toy()
    kw = dict(loss="cross_entropy", steps=3, seed=4, clip_norm=1.0, progress=False)
    ref, ref_history = train.fit(model, model.init(seed=0), train.minibatches(x, y, batch_size=16),
                                 optim.Adam(0.02), **kw)
    with backend.active():
        xb, yb = backend.asarray(x), backend.asarray(y)
        got, history = train.fit(model, model.init(seed=0, xp=backend.xp), train.minibatches(xb, yb, batch_size=16),
                                 optim.Adam(0.02), **kw)
    np.testing.assert_allclose(history.loss, ref_history.loss, rtol=1e-12)
    for a, b in zip(got, ref, strict=True):
        for k in b:
            np.testing.assert_allclose(to_numpy(a[k]), b[k], rtol=1e-10, atol=1e-12)


def test_clipping_rescales_the_gradient():
    """[NN-9] a clipped SGD step equals the step with the gradient rescaled to norm c; the
    recorded norm is the unclipped one."""
    model, x, y = _toy()
    params = model.init(seed=0)
    batch = [(x[:32], y[:32])]
    objective = train.supervised_objective(model, "cross_entropy")
    _, grads = objective(params, batch[0])
    norm = optim.global_norm(grads)
    clipped, history = train.fit(model, params, batch, optim.SGD(0.5), steps=1, clip_norm=norm / 4, progress=False)
    assert history.grad_norm == [pytest.approx(norm, rel=1e-12)]
    for p, g, c in zip(params, grads, clipped, strict=True):
        for k in g:
            np.testing.assert_allclose(c[k], p[k] - 0.5 * g[k] / 4, rtol=1e-12, atol=1e-15)


def test_fit_kr_dual_and_epochs():
    """[NN-9] the KR objective raises the Wasserstein estimate of a 1-D translation towards
    the true W1 = 1 (a 1-Lipschitz critic can never exceed it); epochs count batches."""
    rng = np.random.default_rng(0)
    x_p, x_q = rng.standard_normal((64, 1)) + 1.0, rng.standard_normal((64, 1))
    model = nn.Sequential([nn.Dense(1, 8, "bjorck", n_iter=10), nn.Activation("max_min"),
                           nn.Dense(8, 1, "bjorck", n_iter=10)])
    data = train.minibatches(x_p, x_q, batch_size=16)
    params, history = train.fit(model, model.init(seed=1), data, optim.AggMo(0.01), loss="kr_dual", epochs=15,
                                progress=False)
    assert len(history.loss) == 15 * 4
    estimate = float(np.mean(model(params, x_p)) - np.mean(model(params, x_q)))
    # Exact W1 of two 1-D empirical distributions of equal size: match the sorted samples.
    w1 = float(np.mean(np.abs(np.sort(x_p[:, 0]) - np.sort(x_q[:, 0]))))
    assert 0.95 * w1 < estimate <= lipschitz.upper_bound(model, params) * w1 + 1e-12
    assert estimate > -history.loss[0]


def test_fit_errors():
    model, x, y = _toy()
    params = model.init(seed=0)
    data = [(x[:8], y[:8])] * 2
    run = lambda **kw: train.fit(model, params, data, optim.SGD(0.1), progress=False, **kw)  # noqa: E731
    with pytest.raises(ValueError, match="give exactly one of steps and epochs"):
        run()
    with pytest.raises(ValueError, match="epochs needs data that knows its steps_per_epoch"):
        run(epochs=1)
    with pytest.raises(ValueError, match="data ran out after 2 batches; 3 steps were asked for"):
        run(steps=3)
    with pytest.raises(ValueError, match="eval_every needs a callback"):
        run(steps=1, eval_every=1)
    with pytest.raises(ValueError, match=r"clip_norm must be > 0.0, got 0.0"):
        run(steps=1, clip_norm=0.0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        train.minibatches(x, y, batch_size=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        run(steps=1, loss="mse")
    with pytest.raises(FloatingPointError, match="step 0: loss = nan"):
        run(steps=1, loss=lambda p, b: (math.nan, p))


def test_global_norm_is_the_norm_of_all_leaves():
    """[NN-9] against NumPy's norm of every leaf concatenated (float64), mixed dtypes included."""
    rng = np.random.default_rng(5)
    tree = [{"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(3).astype(np.float32)}, {},
            {"W": rng.standard_normal((2, 3)).astype(np.float32)}]
    flat = np.concatenate([np.asarray(a, np.float64).ravel() for d in tree for a in d.values()])
    assert math.isclose(optim.global_norm(tree), float(np.linalg.norm(flat)), rel_tol=1e-6)
    assert optim.global_norm([{}, {}]) == 0.0


# ----------------------------------------------------------------------------------------------
# Documented defaults, dtypes and messages


def test_kr_dual_keeps_the_dtype_and_refuses_by_name():
    """[NN-7] float32 critic outputs get float32 cotangents of their shapes; ``value_bar``
    defaults to 1; a non-array or a wrongly shaped sample is refused naming ``f_p``."""
    f_p, f_q = np.ones((5, 1), np.float32), np.ones(4, np.float32)
    value, res = losses.kr_dual_fwd(f_p, f_q)
    f_p_bar, f_q_bar = losses.kr_dual_bwd(res)
    assert value.dtype == np.float32 and f_p_bar.dtype == np.float32 and f_q_bar.dtype == np.float32
    assert f_p_bar.shape == (5, 1) and f_q_bar.shape == (4,)
    assert np.all(f_p_bar == np.float32(-1 / 5)) and np.all(f_q_bar == np.float32(1 / 4))
    with pytest.raises(TypeError, match=r"^f_p must be an array"):
        losses.kr_dual_fwd([1.0, 2.0], f_q)
    with pytest.raises(ValueError, match=r"^f_p must have shape \(n,\) or \(n, 1\) with n >= 1"):
        losses.kr_dual_fwd(np.ones((3, 2)), f_q)


def test_multi_margin_shorthand_against_torch():
    """[NN-7] ``multi_margin`` is the value of ``multi_margin_fwd``, default margin 1 as in
    torch's multi_margin_loss."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    logits, labels = rng.standard_normal((7, 4)), rng.integers(0, 4, 7)
    t, tl = torch.tensor(logits), torch.tensor(labels)
    got = losses.multi_margin(logits, labels)
    assert got.shape == () and float(got) == pytest.approx(torch.nn.functional.multi_margin_loss(t, tl).item(),
                                                           rel=1e-14)
    assert float(losses.multi_margin(logits, labels, margin=0.3)) == pytest.approx(
        torch.nn.functional.multi_margin_loss(t, tl, margin=0.3).item(), rel=1e-14)


def test_adam_defaults_match_torch():
    """[NN-8] ``Adam()`` (lr 1e-3, betas (0.9, 0.999), eps 1e-8) steps like ``torch.optim.Adam``
    with its defaults."""
    torch = pytest.importorskip("torch")
    params, grads = _problem()
    got, _ = _run(optim.Adam(), params, grads)
    assert optim.Adam().lr(0) == 1e-3
    t = torch.tensor(params[0]["W"], requires_grad=True)
    opt = torch.optim.Adam([t])
    for g in grads:
        t.grad = torch.tensor(g[0]["W"])
        opt.step()
    np.testing.assert_allclose(got[0]["W"], t.detach().numpy(), rtol=1e-13, atol=1e-14)


def test_optimizer_arguments_named_in_messages():
    with pytest.raises(TypeError, match=r"^betas must be a tuple or list of numbers, got 0.9 \(float\)$"):
        optim.Adam(betas=0.9)
    with pytest.raises(TypeError, match=r"^betas must be a tuple or list of numbers, got 0.9 \(float\)$"):
        optim.AggMo(0.1, betas=0.9)
    with pytest.raises(ValueError, match=r"^betas must be a pair \(beta1, beta2\), got \(0.9,\)$"):
        optim.Adam(betas=(0.9,))
    with pytest.raises(ValueError, match=r"^betas\[1\] must be < 1, got 1.0$"):
        optim.Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"^eps must be > 0.0, got 0.0$"):
        optim.Adam(eps=0.0)
    with pytest.raises(ValueError, match=r"^betas must hold at least one damping coefficient$"):
        optim.AggMo(0.1, betas=())


@pytest.mark.parametrize("kw, message", [
    ({"lr0": 0.0}, r"^lr0 must be > 0.0, got 0.0$"),
    ({"lr0": -1.0}, r"^lr0 must be > 0.0, got -1.0$"),
    ({"factor": 0.0}, r"^factor must be > 0.0, got 0.0$"),
    ({"factor": -0.5}, r"^factor must be > 0.0, got -0.5$"),
    ({"factor": 1.5}, r"^factor must be <= 1.0, got 1.5$"),
])
def test_step_decay_bounds(kw, message):
    """[NN-8] ``lr0 > 0``, ``factor`` in ``(0, 1]``; ``factor = 1`` is a constant schedule."""
    with pytest.raises(ValueError, match=message):
        optim.step_decay(**{"lr0": 0.1, "every": 2, **kw})
    assert [optim.step_decay(0.1, factor=1.0, every=1)(s) for s in range(3)] == [0.1] * 3


def test_aggmo_counts_steps_and_refuses_another_aggmo_state():
    """[NN-8] ``state["step"]`` counts the updates (a schedule reads it); the state of an AggMo
    with another number of betas is refused rather than silently truncated."""
    params, grads = _problem(5)
    schedule = optim.step_decay(0.1, factor=0.5, every=2)
    got, state = _run(optim.AggMo(schedule, (0.0,)), params, grads)
    assert state["step"] == 5
    # With the single beta 0 there is no memory: plain SGD on the schedule.
    expected = params[0]["W"] - sum(schedule(s) * grads[s][0]["W"] for s in range(5))
    np.testing.assert_allclose(got[0]["W"], expected, rtol=1e-14)
    with pytest.raises(ValueError, match=r"^state must hold one velocity per beta \(3, .*got 2 velocities$"):
        optim.AggMo(0.1).update(params, grads[0], optim.AggMo(0.1, (0.0, 0.9)).init(params))
    with pytest.raises(ValueError, match=r"got velocities NoneType$"):
        optim.AggMo(0.1).update(params, grads[0], optim.SGD(0.1).init(params))
    held = optim.AggMo(0.1).init(params)
    with pytest.raises(ValueError, match=r"got velocities tuple$"):
        optim.AggMo(0.1).update(params, grads[0], {**held, "velocities": tuple(held["velocities"])})


# ----------------------------------------------------------------------------------------------
# Mini-batches


@pytest.mark.parametrize("make", [train.Minibatches, train.minibatches])
def test_minibatches_defaults_shuffle_and_drop_the_last_batch(make):
    """[NN-9] by default every epoch is a fresh shuffle and the incomplete last batch is dropped;
    ``shuffle=False`` keeps the order, ``drop_last=False`` keeps the short batch; rows of the
    arrays stay together."""
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    data = make(x, y, batch_size=3)
    assert data.steps_per_epoch == 3
    it = data(np.random.default_rng(0))
    epochs = [[next(it) for _ in range(3)] for _ in range(2)]
    for epoch in epochs:
        assert all(bx.shape == (3, 2) and by.shape == (3,) and np.array_equal(bx[:, 0], 2 * by) for bx, by in epoch)
    seen = [np.concatenate([by for _, by in epoch]) for epoch in epochs]
    assert all(len(set(s.tolist())) == 9 for s in seen)
    assert not np.array_equal(seen[0], np.arange(9)) and not np.array_equal(seen[0], seen[1])
    plain = make(x, y, batch_size=3, shuffle=False, drop_last=False)
    assert plain.steps_per_epoch == 4
    it = plain(np.random.default_rng(0))
    assert [next(it)[1].tolist() for _ in range(5)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9], [0, 1, 2]]


def test_minibatches_edge_sizes_and_messages():
    """[NN-9] a 1-d first array and a single example are valid; bad arrays, batch sizes and flags
    are refused by name."""
    y = np.arange(4)
    assert [next(train.minibatches(y, batch_size=2, shuffle=False)(None))[0].tolist()] == [[0, 1]]
    one = train.minibatches(np.ones((1, 2)), y[:1], batch_size=1)
    bx, by = next(one(np.random.default_rng(0)))
    assert one.steps_per_epoch == 1 and bx.shape == (1, 2) and by.tolist() == [0]
    x = np.zeros((10, 2))
    cases = [
        ((), {}, ValueError, r"^arrays: minibatches needs at least one array$"),
        ((np.asarray(1.0),), {}, ValueError, r"^arrays\[0\] must have a first \(example\) dimension, got a 0-d array$"),
        ((x, np.arange(9)), {}, ValueError, r"^arrays\[1\] must have 10 rows like arrays\[0\], got shape \(9,\)$"),
        ((x, np.asarray(1.0)), {}, ValueError, r"^arrays\[1\] must have 10 rows like arrays\[0\], got shape \(\)$"),
        ((x[:0],), {}, ValueError, r"^arrays must hold at least one example, got 0 rows$"),
        ((x,), {"batch_size": 11}, ValueError, r"^batch_size must be <= 10, got 11$"),
        ((x,), {"shuffle": "yes"}, TypeError, r"^shuffle must be True or False, got 'yes' \(str\)$"),
        ((x,), {"drop_last": 1}, TypeError, r"^drop_last must be True or False, got 1 \(int\)$"),
    ]
    for arrays, kw, exc, message in cases:
        with pytest.raises(exc, match=message):
            train.Minibatches(*arrays, **{"batch_size": 1, **kw})


# ----------------------------------------------------------------------------------------------
# Non-finite losses [NN-14]


def _fit_nan(batch):
    """One step of a callable loss that is NaN on ``batch`` (the parameters stay finite)."""
    model, _, _ = _toy()
    train.fit(model, model.init(seed=0), [batch], optim.SGD(0.1), loss=lambda p, b: (math.nan, p), steps=1,
              progress=False)


def test_nonfinite_batch_of_a_callable_loss_is_named_by_position():
    """[NN-14] a callable loss has no names for its batch: the array is ``batch[i]``; a batch
    that is one array is that array (not its rows); non-arrays and integer arrays are skipped;
    one entry is an "entry", more are "entries"."""
    x = np.ones((4, 3))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"holds 1 non-finite \(NaN or inf\) entry in batch\[0\] \(batch\[0\], "
                                         r"shape \(4, 3\)\); clean"):
        _fit_nan(x)
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"step 0 holds 2 non-finite \(NaN or inf\) entries in batch\[2\] "
                                         r"\(batch\[2\], shape \(4, 3\)\)"):
        _fit_nan(("tag", np.arange(4), x))


def test_nonfinite_data_names_the_arrays_of_a_named_loss():
    """[NN-14] the helper behind the message: ``(x, labels)`` for the classification losses,
    ``(x_p, x_q)`` for ``"kr_dual"``, positions beyond the names as ``batch[i]``."""
    bad = np.array([0.0, np.nan, np.inf])
    fine = np.zeros(3)
    assert train._nonfinite_data((fine, bad), "cross_entropy") == ("labels (batch[1], shape (3,))", 2)
    assert train._nonfinite_data((fine, bad), "kr_dual") == ("x_q (batch[1], shape (3,))", 2)
    assert train._nonfinite_data((fine, fine, bad[:2]), "multi_margin") == ("batch[2] (batch[2], shape (2,))", 1)
    assert train._nonfinite_data((fine, fine), "multi_margin") is None


def test_kr_objective_names_a_sample_that_is_not_an_array():
    """[NN-7] both samples are checked to be arrays (of one library) before the forward pass."""
    model = nn.Sequential([nn.Dense(2, 1, "unit_row")])
    params = model.init(seed=0)
    objective = train.kr_objective(model)
    x = np.ones((3, 2))
    with pytest.raises(TypeError, match=r"^x_p must be an array"):
        objective(params, (x.tolist(), x))
    with pytest.raises(TypeError, match=r"^x_q must be an array"):
        objective(params, (x, x.tolist()))


def test_nonfinite_batch_counted_on_every_backend(backend):
    """[NN-14] the count of non-finite entries is read on the batch's own backend."""
    x = np.ones((4, 3))
    x[1, :2] = np.nan
    with backend.active(), pytest.raises(ValueError, match=r"holds 2 non-finite \(NaN or inf\) entries in batch\[0\]"):
        _fit_nan((backend.asarray(x),))


def test_multi_margin_at_the_kink_on_every_backend(backend, dtype):
    """[NN-7] a term exactly at the hinge's kink (``m - f_y + f_j = 0``) is inactive, as in
    torch's multi_margin_loss; the loss and its cotangent keep the logits' dtype and backend."""
    torch = pytest.importorskip("torch")
    logits = np.array([[1.0, 0.0, 1.5], [2.0, 1.0, 0.0], [0.5, -0.5, 1.5], [0.0, 3.0, 2.0]])
    labels = np.array([0, 0, 2, 1])
    t = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.multi_margin_loss(t, torch.tensor(labels), margin=1.0)
    ref.backward()
    with backend.active():
        value, res = losses.multi_margin_fwd(backend.asarray(logits, dtype), backend.asarray(labels), margin=1.0)
        grad = losses.multi_margin_bwd(res, 1.0)
        assert value.dtype == backend.dtype(dtype) and grad.dtype == backend.dtype(dtype)
        got_value, got_grad = float(value), to_numpy(grad)
    assert got_value == pytest.approx(ref.item(), rel=1e-6)
    np.testing.assert_allclose(got_grad, t.grad.numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("fwd", [losses.multi_margin_fwd, losses.cross_entropy_fwd])
def test_logits_and_labels_checked_by_name(fwd):
    """[NN-7] one example and two classes are valid, every label of ``[0, C)`` included; bad
    logits, label dtypes, shapes and ranges are refused with the documented messages."""
    torch = pytest.importorskip("torch")
    ref = {losses.multi_margin_fwd: torch.nn.functional.multi_margin_loss,
           losses.cross_entropy_fwd: torch.nn.functional.cross_entropy}[fwd]
    for logits, labels in [(np.array([[0.3, -0.2]]), np.array([1])),
                           (np.array([[0.3, -0.2], [1.0, 0.5], [-1.0, 2.0]]), np.array([0, 1, 0])),
                           (np.arange(12.0).reshape(3, 4) / 5, np.array([3, 0, 2]))]:
        expected = ref(torch.tensor(logits), torch.tensor(labels)).item()
        assert float(fwd(logits, labels)[0]) == pytest.approx(expected, rel=1e-14)
    logits = np.zeros((3, 4))
    cases = [
        (np.zeros((0, 4)), np.zeros(0, np.int64), ValueError,
         r"^logits must have shape \(batch, classes\) with batch >= 1 and classes >= 2, got \(0, 4\)$"),
        (np.zeros((3, 4, 2)), np.zeros(3, np.int64), ValueError, r"^logits must have shape .* got \(3, 4, 2\)$"),
        (np.zeros(3), np.zeros(3, np.int64), ValueError, r"^logits must have shape .* got \(3,\)$"),
        (np.zeros((3, 4), np.int64), np.zeros(3, np.int64), TypeError, r"^logits must have dtype float32 or float64"),
        (logits, np.zeros(3), TypeError, r"^labels must be an integer array, got dtype float64$"),
        (logits, np.zeros(2, np.int64), ValueError,
         r"^labels must have shape \(3,\) to match logits \(3, 4\), got \(2,\)$"),
        (logits, np.zeros((3, 1), np.int64), ValueError, r"^labels must have shape \(3,\) to match logits \(3, 4\), "
                                                         r"got \(3, 1\)$"),
        (logits, np.array([-1, 0, 2]), ValueError,
         r"^labels must lie in \[0, 4\) for 4 classes, got values from -1 to 2$"),
        (logits, np.array([1, 4, 2]), ValueError,
         r"^labels must lie in \[0, 4\) for 4 classes, got values from 1 to 4$"),
    ]
    for bad_logits, bad_labels, exc, message in cases:
        with pytest.raises(exc, match=message):
            fwd(bad_logits, bad_labels)


@pytest.mark.parametrize("loss", ["kr_dual", "multi_margin", "cross_entropy"])
def test_value_bar_may_be_a_zero_dimensional_array(loss):
    """[NN-7] ``value_bar``, the cotangent of the scalar loss, may be a 0-d float array (a loss
    value itself): it is read back as the Python float it holds; an array of another shape, or a
    0-d integer array, is refused naming ``value_bar``."""
    logits, labels = RNG.standard_normal((3, 4)), np.array([0, 1, 3])
    args = (logits[:, 0], logits[:2, 1]) if loss == "kr_dual" else (logits, labels)
    _, res = getattr(losses, f"{loss}_fwd")(*args)
    bwd = getattr(losses, f"{loss}_bwd")
    expected = bwd(res, -0.75)
    for value_bar in (np.array(-0.75), np.array(-0.75, np.float32)):
        got = bwd(res, value_bar)
        for a, b in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple)
                        else (expected,), strict=True):
            assert np.array_equal(a, b)
    with pytest.raises(TypeError, match=r"^value_bar must be a real number, got array\(\[-0\.75\]\) \(ndarray\)$"):
        bwd(res, np.array([-0.75]))
    with pytest.raises(TypeError, match=r"^value_bar must have dtype float32 or float64, got int64"):
        bwd(res, np.array(2))


@pytest.mark.parametrize("loss", ["multi_margin", "cross_entropy"])
def test_classification_losses_refuse_logits_and_labels_by_name(loss):
    """[NN-7] ``logits`` and ``labels`` are both arrays of one library: a list, or arrays of two
    libraries, are refused with a ``TypeError`` naming the argument(s)."""
    fwd = getattr(losses, f"{loss}_fwd")
    logits, labels = RNG.standard_normal((3, 4)), np.array([0, 1, 3])
    for name, args in (("logits", (logits.tolist(), labels)), ("labels", (logits, labels.tolist()))):
        with pytest.raises(TypeError, match="^" + re.escape(f"{name} must be an array (NumPy, CuPy or any array-API "
                                                            f"array), got list; convert with numpy.asarray") + "$"):
            fwd(*args)
    xps = pytest.importorskip("array_api_strict")
    for args in ((xps.asarray(logits), labels), (logits, xps.asarray(labels))):
        with pytest.raises(TypeError, match=r"^logits, labels must be arrays of one array library, got "):
            fwd(*args)


def test_loss_defaults_are_margin_one_and_value_bar_one():
    """[NN-7] the signatures' defaults: ``margin=1.0`` (torch's multi_margin_loss default) and
    ``value_bar=1.0`` for every backward pass."""
    torch = pytest.importorskip("torch")
    logits, labels = RNG.standard_normal((5, 3)), np.array([0, 1, 2, 2, 0])
    value, res = losses.multi_margin_fwd(logits, labels)
    assert float(value) == pytest.approx(torch.nn.functional.multi_margin_loss(
        torch.tensor(logits), torch.tensor(labels)).item(), rel=1e-14)
    assert np.array_equal(losses.multi_margin_bwd(res), losses.multi_margin_bwd(res, 1.0))
    _, res = losses.cross_entropy_fwd(logits, labels)
    assert np.array_equal(losses.cross_entropy_bwd(res), losses.cross_entropy_bwd(res, 1.0))
    _, res = losses.kr_dual_fwd(logits[:, 0], logits[:3, 1])
    assert all(np.array_equal(a, b) for a, b in zip(losses.kr_dual_bwd(res), losses.kr_dual_bwd(res, 1.0), strict=True))


def _sgd_problem():
    params = [{"W": np.ones((2, 2)), "b": np.zeros(2)}]
    return params, [{"W": np.full((2, 2), 0.5), "b": np.ones(2)}]


@pytest.mark.parametrize("call, exc, text", [
    (lambda p, g: optim.SGD(0.1, momentum=-0.1), ValueError, "momentum must be >= 0.0, got -0.1"),
    (lambda p, g: optim.SGD(0.1, momentum="x"), TypeError, "momentum must be a real number, got 'x' (str)"),
    (lambda p, g: optim.SGD(0.1, momentum=0.5, nesterov=1), TypeError, "nesterov must be True or False, got 1 (int)"),
    (lambda p, g: optim.SGD(0.1, nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
    (lambda p, g: optim.SGD(0.1).init(p[0]), TypeError,
     "params must be a list of dicts of arrays (one dict per layer), got dict"),
    (lambda p, g: optim.SGD(0.1).init([1, 2]), TypeError,
     "params must be a list of dicts of arrays (one dict per layer), got list"),
    (lambda p, g: optim.SGD(0.1).update(p[0], g, {"step": 0}), TypeError,
     "params must be a list of dicts of arrays (one dict per layer), got dict"),
    (lambda p, g: optim.SGD(0.1).update(p, g, [0]), TypeError,
     "state must be the dict returned by init (or update), got list"),
    (lambda p, g: optim.SGD(lambda step: 0.0).update(p, g, {"step": 0}), ValueError,
     "lr (the schedule's value at step 0) must be > 0.0, got 0.0"),
    (lambda p, g: optim.tree_map(3, p), TypeError, "fn must be callable, got int"),
    (lambda p, g: optim.tree_map(abs, p[0]), TypeError, "tree must be a list of dicts (one per layer), got dict"),
    (lambda p, g: optim.tree_map(abs, [1]), TypeError, "tree must be a list of dicts (one per layer), got list"),
    (lambda p, g: optim.tree_map(np.add, p, [{"W": 1.0}]), ValueError,
     "rest[0] must have the structure of tree (a list of 1 dicts with the same keys)"),
])
def test_optimizer_messages_in_full(call, exc, text):
    """[NN-8] wrong types raise ``TypeError``, wrong values ``ValueError``, naming the argument."""
    params, grads = _sgd_problem()
    with pytest.raises(exc, match="^" + re.escape(text) + "$") as info:
        call(params, grads)
    assert type(info.value) is exc


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_sgd_state_counts_the_updates(momentum):
    """[NN-8] ``state["step"]`` counts the updates (the schedule reads steps 0, 1, 2); SGD
    without momentum keeps no velocity."""
    params, grads = _sgd_problem()
    seen = []
    opt = optim.SGD(lambda step: seen.append(step) or 0.1, momentum=momentum)
    state = opt.init(params)
    assert set(state) == ({"step", "velocity"} if momentum else {"step"})
    for _ in range(3):
        params, state = opt.update(params, grads, state)
    assert seen == [0, 1, 2] and state["step"] == 3


def _fit_setup():
    model = nn.Sequential([nn.Dense(2, 3)])
    x, labels = np.ones((4, 2)), np.array([0, 1, 2, 0])
    return model, model.init(seed=0), [(x, labels)] * 2, optim.SGD(0.1)


_FIT_ERRORS = [
    ({"steps": None}, ValueError, "steps, epochs: give exactly one of steps and epochs"),
    ({"steps": None, "epochs": 1}, ValueError,
     "epochs needs data that knows its steps_per_epoch (train.minibatches); pass steps instead"),
    ({"steps": None, "epochs": 0, "data": "minibatches"}, ValueError, "epochs must be >= 1, got 0"),
    ({"steps": None, "epochs": 10**30, "data": "minibatches"}, ValueError, f"epochs must be <= 10000, got {10**30}"),
    ({"steps": None, "epochs": 10_000, "data": "minibatches", "optimizer": "sgd"}, TypeError,
     "optimizer must be a reflip.nn.optim optimizer (SGD, Adam, AggMo...), got str"),  # 10^7 steps: allowed
    ({"steps": None, "epochs": 5_001, "data": "minibatches2000"}, ValueError,
     "epochs * steps_per_epoch must be <= 10000000, got 5001 * 2000"),
    ({"steps": 0}, ValueError, "steps must be >= 1, got 0"),
    ({"steps": 10**30}, ValueError, f"steps must be <= 10000000, got {10**30}"),
    ({"progress": 1}, TypeError, "progress must be True or False, got 1 (int)"),
    ({"eval_every": 0, "callback": print}, ValueError, "eval_every must be >= 1, got 0"),
    ({"eval_every": 2}, ValueError, "eval_every needs a callback (callback(step, params, history))"),
    ({"callback": 3}, TypeError, "callback must be callable or None, got int"),
    ({"post_update": 3}, TypeError, "post_update must be callable or None, got int"),
    ({"loss_options": [1]}, TypeError, "loss_options must be a dict or None, got list"),
    ({"loss": lambda p, b: None, "loss_options": {"margin": 1.0}}, ValueError,
     "loss_options apply to a named loss; a callable loss takes its own options"),
    ({"loss": "hinge"}, ValueError, "loss must be one of ('multi_margin', 'cross_entropy', 'kr_dual'), got 'hinge'"),
    ({"loss_options": {"margin": 0.3}}, TypeError,
     "loss 'cross_entropy' got unexpected option(s) ['margin']; its options are none"),
    ({"data": 3}, TypeError, "data must be an iterable of batches or a callable rng -> iterable, got int"),
]


@pytest.mark.parametrize("kwargs, exc, text", _FIT_ERRORS, ids=[t[:30] for _, _, t in _FIT_ERRORS])
def test_fit_messages_in_full(kwargs, exc, text):
    """[NN-9] ``fit`` checks every argument before the first step, naming it."""
    model, params, data, opt = _fit_setup()
    kwargs = {"steps": 2, "progress": False, **kwargs}
    if str(kwargs.get("data")).startswith("minibatches"):  # 1000 steps per epoch, or the number named
        n = int(kwargs["data"][len("minibatches"):] or 1000)
        kwargs["data"] = train.minibatches(np.ones((n, 2)), np.zeros(n, dtype=np.int64), batch_size=1)
    data, opt = kwargs.pop("data", data), kwargs.pop("optimizer", opt)
    with pytest.raises(exc, match="^" + re.escape(text) + "$") as info:
        train.fit(model, params, data, opt, **kwargs)
    assert type(info.value) is exc


def test_supervised_objective_messages_in_full():
    """[NN-7] the loss is named among the choices; its options are checked when the objective
    is built (an unknown one named, a bad value refused by the loss)."""
    model = _fit_setup()[0]
    with pytest.raises(ValueError, match="^" + re.escape("loss must be one of ('multi_margin', 'cross_entropy'), "
                                                         "got 'kr_dual'") + "$"):
        train.supervised_objective(model, "kr_dual")
    with pytest.raises(TypeError, match="^" + re.escape("loss 'multi_margin' got unexpected option(s) ['scale']; its "
                                                        "options are ['margin']") + "$"):
        train.supervised_objective(model, "multi_margin", scale=2.0)
    with pytest.raises(ValueError, match=r"^margin must be >= 0.0, got -1.0$"):
        train.supervised_objective(model, "multi_margin", margin=-1.0)


def test_fit_shows_a_progress_bar_by_default(capsys):
    """[NN-9] ``progress=True`` (the default) shows a tqdm bar on stderr, described ``"train"``
    (``desc``'s default), counting the steps out of the total; ``progress=False`` shows nothing.
    (tqdm redraws at most every 0.1 s: a two-step run shows the bar's first state only.)"""
    model, params, data, opt = _fit_setup()
    train.fit(model, params, data, opt, steps=2)
    assert re.search(r"train: +0%.*\| 0/2 ", capsys.readouterr().err)
    train.fit(model, params, data, opt, steps=2, desc="phase one")
    assert "phase one" in capsys.readouterr().err
    train.fit(model, params, data, opt, steps=2, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("steps, every", [(4, 1), (301, 3)])
def test_fit_progress_bar_shows_the_latest_loss_or_evaluation(monkeypatch, steps, every):
    """[NN-9] Every state the bar passes through, drawn by a tqdm that redraws on every change:
    it counts one per step; the loss shown is that of the latest step among every
    ``max(1, steps // 100)``-th and the last (``every``, worked out by hand here); a callback's
    dict (its numbers) replaces it until the next loss is shown; the finished bar is cleared."""
    import tqdm

    stream = io.StringIO()

    class EveryState(tqdm.tqdm):  # the same bar, drawn on every change
        def __init__(self, *args, **kwargs):
            super().__init__(*args, file=stream, mininterval=0, miniters=1, bar_format="{n}/{total}{postfix}",
                             **kwargs)

    monkeypatch.setattr(tqdm, "tqdm", EveryState)
    model, params, _, opt = _fit_setup()
    x, labels = np.ones((4, 2)), np.array([0, 1, 2, 0])
    evals = [4, 8, 12]
    _, history = train.fit(model, params, [(x, labels)] * steps, opt, steps=steps, eval_every=4,
                           callback=lambda done, p, h: {"acc": done / 1000, "tag": "x"} if done in evals else None)
    expected, shown = ["", f"0/{steps}"], ""
    for step in range(steps):
        if step % every == 0 or step == steps - 1:
            shown = f", loss={history.loss[step]:.4g}"
        expected.append(f"{step + 1}/{steps}{shown}")
        if step + 1 in evals:
            shown = f", acc={(step + 1) / 1000:.4g}"
    frames = [frame.rstrip() for frame in stream.getvalue().split("\r")]  # tqdm pads to the last width
    assert frames[:-2] == expected
    assert frames[-2:] == ["", ""]  # cleared, not left on the terminal
    if steps > 4:
        assert "acc=0.008" in stream.getvalue()  # an evaluation between two shown losses is seen


def test_fit_names_the_critic_batch_and_seeds_with_zero():
    """[NN-9] a refused ``"kr_dual"`` batch is named as the pair ``(x_p, x_q)``; ``seed``
    defaults to 0: the shuffled run equals the one with ``seed=0``."""
    critic = nn.Sequential([nn.Dense(2, 1)])
    with pytest.raises(TypeError, match=re.escape("data: the batch of step 0 (expected a pair (x_p, x_q)) was "
                                                  "refused: x_q must be an array")):
        train.fit(critic, critic.init(seed=0), [(np.ones((2, 2)), [1.0])], optim.SGD(0.1), loss="kr_dual", steps=1,
                  progress=False)
    model, params, _, opt = _fit_setup()
    x, labels = RNG.standard_normal((8, 2)), np.array([0, 1, 2, 0, 1, 2, 0, 1])
    runs = [train.fit(model, params, train.minibatches(x, labels, batch_size=2), opt, steps=4, progress=False,
                      **seed)[0] for seed in ({}, {"seed": 0}, {"seed": 1})]
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(runs[0], runs[1], strict=True) for k in a)
    assert not all(np.array_equal(a[k], b[k]) for a, b in zip(runs[0], runs[2], strict=True) for k in a)


def test_fit_names_parameters_that_became_non_finite():
    """[NN-14] parameters made non-finite by an update (here by ``post_update``) and refused by
    a constraint at the next step: ``FloatingPointError`` naming the step and the array."""
    model = nn.Sequential([nn.Dense(4, 3, "bjorck")])
    data = [(RNG.standard_normal((8, 4)), np.array([0, 1, 2, 0, 1, 2, 0, 1]))] * 3
    with pytest.raises(FloatingPointError, match="^" + re.escape(
            "step 1: params[0]['W'] became NaN or inf after an update (w must be finite (it contains NaN or inf); "
            "pass check_finite=False to skip this check and let NaN propagate); the optimisation diverged: lower "
            "the learning rate or set clip_norm") + "$"):
        train.fit(model, model.init(seed=0), data, optim.SGD(0.1), steps=3, progress=False,
                  post_update=lambda ps: [{**ps[0], "W": ps[0]["W"] * np.inf}])


def test_fit_records_the_learning_rates_and_leaves_a_callable_loss_errors_alone():
    """[NN-9] ``history.lr`` holds the learning rate of every update (a schedule read at steps
    0, 1, 2); an error raised by a callable loss reaches the caller unchanged (only a named
    loss's batch errors are rewritten to name the batch); a non-finite loss names the step, the
    loss and the gradient norm [NN-14]."""
    model, params, data, _ = _fit_setup()
    _, history = train.fit(model, params, data * 2, optim.SGD(lambda step: 0.1 / (step + 1)), steps=3,
                           progress=False)
    assert history.lr == [0.1, 0.05, 0.1 / 3]

    def refusing(p, batch):
        raise ValueError("my loss refuses this batch")

    with pytest.raises(ValueError, match="^my loss refuses this batch$"):
        train.fit(model, params, data, optim.SGD(0.1), loss=refusing, steps=1, progress=False)

    def nan_loss(p, batch):
        return np.nan, [{k: np.ones_like(a) for k, a in p[0].items()}]

    with pytest.raises(FloatingPointError, match=r"^step 0: loss = nan, gradient norm = 3\.0; "):
        train.fit(model, params, data, optim.SGD(0.1), loss=nan_loss, steps=1, progress=False)


def test_fit_checks_params_against_the_model_for_named_losses_only():
    """[NN-9] with a named loss, ``params`` are checked against the model before the first step
    (the error names the parameter, not the batch); a callable loss takes any parameter tree."""
    model, params, data, opt = _fit_setup()
    bad = [{"W": np.ones((2, 2)), "b": params[0]["b"]}]
    with pytest.raises(ValueError, match="^" + re.escape("params[0]['W'] (Dense(2, 3, constraint='none')) must have "
                                                         "shape (3, 2), got (2, 2)") + "$"):
        train.fit(model, bad, data, opt, steps=1, progress=False)

    def quadratic(p, batch):
        return float(np.sum(p[0]["theta"] ** 2)), [{"theta": 2 * p[0]["theta"]}]

    trained, _ = train.fit(model, [{"theta": np.ones(2)}], data, opt, loss=quadratic, steps=2, progress=False)
    np.testing.assert_allclose(trained[0]["theta"], [0.64, 0.64], rtol=1e-15)


def test_fit_callback_sees_every_update_count_and_the_final_params():
    """[NN-9] ``callback(step, params, history)``: ``step`` updates done so far, ``params``
    after them (at the end: the parameters ``fit`` returns), ``history`` with ``step`` losses."""
    model, params, data, opt = _fit_setup()
    seen = []

    def callback(step, p, history):
        seen.append((step, p, len(history.loss)))

    trained, _ = train.fit(model, params, data * 2, opt, steps=4, eval_every=2, callback=callback, progress=False)
    assert [(s, n) for s, _, n in seen] == [(2, 2), (4, 4)]
    assert all(np.array_equal(seen[-1][1][0][k], trained[0][k]) for k in trained[0])
