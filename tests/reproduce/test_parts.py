"""Pieces of `reflip reproduce` checked against hand-built networks with known answers: the
critic evaluation on the |x| task (a MaxMin critic computing -|x| exactly has estimate 1 and
gradient norm 1; the best ReLU one of the same shape gets 1/2, claim C3), the unit-activity
measure against reflip.nn's, and the shared helpers."""
import math

import numpy as np
import pytest

from reflip import nn
from reflip.reproduce import common, gnp, robustness, tasks, wasserstein

S = 1 / math.sqrt(2)


def _abs_critic(activation):
    """f(x) = w2 . act(W1 x) with W1 = (1, -1)^T / sqrt 2 and w2 a unit row: with MaxMin,
    act = (-|x|, |x|) / sqrt 2 and w2 = (1, -1) / sqrt 2 give f = -|x|; with ReLU,
    act = (relu(x), relu(-x)) / sqrt 2 and w2 = -(1, 1) / sqrt 2 give f = -|x| / 2, the best any
    one-hidden-layer network with 2-norm-constrained weights and monotone activations can do
    (C3, the extremal case of [NR-6])."""
    critic = tasks.Critic(activation, (2, 1))
    model = wasserstein.critic_model(critic, 1, n_iter=20)
    params = model.init(seed=0)
    params[0] = {"W": np.array([[S], [-S]]), "b": np.zeros(2)}
    w2 = [[S, -S]] if activation == "max_min" else [[-S, -S]]
    params[2] = {"W": np.array(w2), "b": np.array([0.3])}
    return model, params


@pytest.mark.parametrize("activation, value", [("max_min", 1.0), ("relu", 0.5)])
def test_evaluate_critic_on_abs(activation, value):
    """[RP-3] [NR-6] On P = delta_0, Q = uniform{-1, +1}: estimate mean f(P) - mean f(Q) and the
    gradient norms of a hand-built critic, against the closed form."""
    model, params = _abs_critic(activation)
    ctx = common.Context("tiny", 0)
    x_p, x_q = np.zeros((6, 1)), np.array([[-1.0], [1.0]] * 3)
    x_grad = np.array([[-0.7], [-0.2], [0.4], [0.9]])
    stats, norms, frozen, fp = wasserstein.evaluate_critic(ctx, model, params, x_p, x_q, x_grad)
    assert stats["estimate"] == pytest.approx(value, abs=1e-12)
    assert stats["std_error"] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(norms, value, rtol=1e-12)
    assert stats["lipschitz_upper"] == pytest.approx(1.0, abs=1e-12)
    x = np.linspace(-1, 1, 9)[:, None]
    np.testing.assert_allclose(frozen(fp, x)[:, 0] - 0.3, -value * np.abs(x[:, 0]), atol=1e-12)


def _pre_activation_activity(model, params, x):
    """Unit activity from pre-activations recomputed by plain matrix products (reference)."""
    z, out = x, []
    weights = model.effective_weights(params)
    dense = [p for layer, p in zip(model.layers, params, strict=True) if isinstance(layer, nn.Dense)]
    for k, (w, p) in enumerate(zip(weights, dense, strict=True)):
        z = z @ np.asarray(w).T + p["b"]
        if k == len(weights) - 1:
            break
        out.append((float(np.all(z <= 0, axis=0).mean()), float(np.all(z > 0, axis=0).mean())))
        z = np.maximum(z, 0)
    return out


def check_relu_activity(activity_fn):
    """ReLU never/always-active fractions agree with reflip.nn.lipschitz.unit_activity and with
    pre-activations recomputed by hand, on a network with planted dead and always-on units."""
    model = common.build_mlp(3, (8, 6, 2), "relu", "none")
    params = model.init(seed=1)
    params[0]["b"] = np.array([-50.0, 50.0, 0, 0, 0, 0, -50.0, 0])  # units 0, 6 dead; unit 1 always on
    x = np.random.default_rng(0).standard_normal((40, 3))
    got = [(e["never_active"], e["always_active"]) for e in activity_fn(model, params, x)]
    ref = [(e["never"], e["always"]) for e in nn.lipschitz.unit_activity(model, params, x)]
    assert got == ref == _pre_activation_activity(model, params, x)
    assert got[0][0] >= 2 / 8 and got[0][1] >= 1 / 8


def check_group_activity(activity_fn):
    """MaxMin: a pair whose order is the same on every example counts as fixed; the other
    pair, whose order varies, does not; GroupSort(3) likewise."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 4))
    x[:, 1] = x[:, 0] + 1.0 + rng.uniform(size=50)  # pair (0, 1) always ascending
    for activation, k, expected in (("max_min", None, 0.5), ("group_sort", 2, 0.5)):
        model = common.build_mlp(4, (4, 1), activation, "none", group_size=k)
        params = model.init(seed=0)
        params[0] = {"W": np.eye(4), "b": np.zeros(4)}
        (entry,) = activity_fn(model, params, x)
        assert entry["fixed_permutation"] == expected, activation
    x6 = rng.standard_normal((50, 6))
    x6[:, :3] = np.sort(x6[:, :3], axis=1)[:, ::-1]  # first group of 3 always descending
    model = common.build_mlp(6, (6, 1), "group_sort", "none", group_size=3)
    params = model.init(seed=0)
    params[0] = {"W": np.eye(6), "b": np.zeros(6)}
    assert activity_fn(model, params, x6)[0]["fixed_permutation"] == 0.5


ACTIVITY_CHECKS = [check_relu_activity, check_group_activity]


@pytest.mark.parametrize("check", ACTIVITY_CHECKS, ids=lambda c: c.__name__)
def test_activity(check):
    check(gnp.activity)
    check(_mutant_activity)  # the mutants' scaffold is right when no bug is planted


def _mutant_activity(model, params, x, *, after_activation=False, always=np.all, axis=0):
    """A re-implementation of gnp.activity with a planted bug: measuring the activation's output
    instead of its input (the same thing for ReLU, not for sorting), calling a unit always
    active when ``always`` (e.g. ``np.any``) says so, or reducing over units instead of
    examples (``axis=1``)."""
    frozen, fp = model.freeze(params)
    out = []
    for layer, p in zip(frozen.layers, fp, strict=True):
        if isinstance(layer, nn.Activation):
            z = layer.apply(p, x, np) if after_activation else x
            if layer.name == "relu":
                out.append({"activation": "relu", "never_active": float(np.mean(np.all(z <= 0, axis=axis))),
                            "always_active": float(np.mean(always(z > 0, axis=axis)))})
            else:
                k = {"max_min": 2, "full_sort": z.shape[1]}.get(layer.name, layer.group_size)
                perm = np.argsort(z.reshape(len(z), -1, k), axis=-1, kind="stable")
                out.append({"activation": layer.name,
                            "fixed_permutation": float(np.mean(np.all(perm == perm[:1], axis=(0, 2))))})
        x = layer.apply(p, x, np)
    return out


def _after_activation(model, params, x):
    return _mutant_activity(model, params, x, after_activation=True)


def _any_example(model, params, x):
    return _mutant_activity(model, params, x, always=np.any)


def _per_example(model, params, x):
    return _mutant_activity(model, params, x, axis=1)


@pytest.mark.meta
@pytest.mark.parametrize("mutant, check", [(_after_activation, check_group_activity),
                                           (_any_example, check_relu_activity),
                                           (_per_example, check_relu_activity)],
                         ids=["after_activation-groups", "any_example-relu", "per_example-relu"])
def test_activity_mutants_are_caught(mutant, check):
    with pytest.raises(AssertionError):
        check(mutant)


@pytest.mark.meta
@pytest.mark.parametrize("activation", ["max_min", "relu"])
def test_evaluate_critic_catches_a_sign_flip(monkeypatch, activation):
    """A KR estimate computed as mean f(Q) - mean f(P) fails the |x| check."""
    model, params = _abs_critic(activation)
    real = wasserstein.evaluate_critic

    def flipped(*args):
        stats, *rest = real(*args)
        return ({**stats, "estimate": -stats["estimate"]}, *rest)

    monkeypatch.setattr(wasserstein, "evaluate_critic", flipped)
    with pytest.raises(AssertionError):
        test_evaluate_critic_on_abs(activation, {"max_min": 1.0, "relu": 0.5}[activation])


def test_helpers():
    lr = common.milestone_schedule(0.01, 0.9, (32, 64))
    assert [lr(s) for s in (0, 31, 32, 63, 64, 1000)] == pytest.approx([0.01, 0.01, 0.009, 0.009, 0.0081, 0.0081])
    assert common.seed_for(0, "abs", "MaxMin") == common.seed_for(0, "abs", "MaxMin")
    assert len({common.seed_for(s, t) for s in (0, 1) for t in ("abs", "cones")}) == 4
    p = common.cast_params([{"W": np.ones((2, 2), np.float32)}, {}], np, "float64")
    assert p[0]["W"].dtype == np.float64 and p[1] == {}
    for bad, message in ((dict(mode="huge"), "mode must be one of"), (dict(seed=-1), "seed must be an integer"),
                         (dict(dtype="float16"), "dtype must be"), (dict(backend="torch"), "backend must be one of")):
        with pytest.raises(ValueError, match=message):
            common.Context(**{"mode": "tiny", "seed": 0, **bad})


@pytest.mark.parametrize("dataset, in_features", [("digits", 64), ("mnist", 784)])
def test_classifier_models_have_the_promised_constraints(dataset, in_features):
    """The l_inf network is 1-Lipschitz l_inf -> l_inf before its Scale, the Björck one
    1-Lipschitz in l2, whatever the weights: bounds from the effective weights."""
    configs, classifiers = tasks.ROBUSTNESS_DATASETS[dataset]
    cfg = configs["tiny"]
    for spec in classifiers[1:]:
        model = robustness.classifier_model(spec, cfg, in_features)
        params = model.init(seed=0)
        params = [{k: 3.0 * v for k, v in p.items()} for p in params]  # far outside any ball
        p = 2 if spec.cert_p == 2 else math.inf
        assert nn.lipschitz.upper_bound(model, params, p=p) <= spec.scale * (1 + 1e-6)


def test_seed_statistics_against_the_statistics_module():
    """mean ± sample std over seeds, a missing (None) or diverged (NaN) seed left out."""
    import statistics

    from reflip.reproduce import aggregate

    values = [0.9420, None, 0.9611, float("nan"), 0.9533]
    kept = [0.9420, 0.9611, 0.9533]
    s = aggregate.stats(values)
    assert s["n"] == 3 and s["mean"] == pytest.approx(statistics.mean(kept), rel=1e-15)
    assert s["std"] == pytest.approx(statistics.stdev(kept), rel=1e-12)
    assert (s["min"], s["max"]) == (min(kept), max(kept))
    assert aggregate.cell(values) == f"{statistics.mean(kept):.4f} ± {statistics.stdev(kept):.4f}"
    assert aggregate.cell([0.5]) == "0.5000" and aggregate.cell([None]) == "n/a"
    assert aggregate.stats([2.0])["std"] == 0.0


@pytest.mark.parametrize("n, points", [(1, 50), (7, 50), (50, 50), (1500, 50), (101, 10)])
def test_windowed_curve_covers_every_step_once(n, points):
    """Window means: consecutive windows ending at increasing steps, the last at step n, their
    length-weighted means giving the overall mean (each step counted exactly once)."""
    from reflip.reproduce import aggregate

    values = np.random.default_rng(n).standard_normal(n)
    curve = aggregate.windowed(values, points)
    ends = [0] + [s for s, _ in curve]
    assert len(curve) == min(n, points) and ends[-1] == n and all(np.diff(ends) > 0)
    lengths = np.diff(ends)
    assert lengths.max() - lengths.min() <= 1
    total = sum(m * k for (_, m), k in zip(curve, lengths, strict=True))
    assert total == pytest.approx(values.sum(), abs=1e-9)
    for (end, m), k in zip(curve, lengths, strict=True):
        assert m == pytest.approx(values[end - k:end].mean(), abs=1e-12)


def _panels(fig):
    """(axes holding a plot, colourbars, empty visible axes) of a figure."""
    plotted, bars, empty = [], [], []
    for ax in [a for top in fig.axes for a in (top, *top.child_axes)]:  # insets are child axes
        if getattr(ax, "_colorbar", None) is not None:
            bars.append(ax)
        elif ax.collections or ax.lines or ax.images:
            plotted.append(ax)
        elif ax.axison and not ax.get_legend():
            empty.append(ax)
    return plotted, bars, empty


@pytest.mark.parametrize("with_truth", [False, True])
def test_critic_panels_share_one_colour_scale(with_truth):
    """Every panel's contours use the same levels, one colourbar shows them, and no axes is left
    empty: critics of very different offsets and scales are comparable by colour."""
    from reflip.reproduce import plotting

    xx, yy = np.meshgrid(np.linspace(-2, 2, 21), np.linspace(-1, 1, 11))
    learned = {f"critic {i}": (i + 1) * np.sin(xx) * yy + 10 * i for i in range(4)}
    truth = -np.abs(xx) if with_truth else None
    fig = plotting.critic_2d(xx, yy, learned, truth, "t")
    plotted, bars, empty = _panels(fig)
    assert len(plotted) == 4 + with_truth and len(bars) == 1 and not empty
    levels = [tuple(ax.collections[0].levels) for ax in plotted]
    assert len(set(levels)) == 1
    values = np.concatenate([np.ravel(v - v.mean() + (truth.mean() if with_truth else 0)) for v in learned.values()])
    assert levels[0][0] <= values.min() and levels[0][-1] >= values.max()


def test_learning_curve_panels():
    from reflip.reproduce import plotting

    steps = np.arange(1, 11)
    band = (steps, steps / 10, steps / 10 - 0.1, steps / 10 + 0.1)
    panels = {f"task {i}": ({"ReLU": band, "MaxMin": band}, 1.0) for i in range(5)}
    fig = plotting.learning_curves(panels, "t", "estimate", reference_label="truth")
    plotted, bars, empty = _panels(fig)
    assert len(plotted) == 5 and not empty
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend())
    assert [t.get_text() for t in legend.get_texts()] == ["ReLU", "MaxMin", "truth"]
    for ax in plotted:
        assert len(ax.lines) == 3 and len(ax.collections) == 2  # two curves, the truth, two bands
    # A label keeps its colour in a panel that lacks another curve.
    fig = plotting.learning_curves({"a": ({"ReLU": band, "GroupSort(4)": band, "FullSort": band}, None),
                                    "b": ({"ReLU": band, "FullSort": band}, None)}, "t", "estimate")
    a, b = _panels(fig)[0]
    assert a.lines[2].get_color() == b.lines[1].get_color() != a.lines[1].get_color()
