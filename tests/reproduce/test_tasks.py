"""The reproductions' data: the paper code's point-mass / sphere tasks (W1 = 1 by construction,
checked with the exact solver), the computed-truth clouds, the digits split, and the results
writer's helpers."""
import json

import numpy as np
import pytest

from reflip.reproduce import ot, results, tasks


@pytest.mark.parametrize("task", tasks.WASSERSTEIN_TASKS, ids=lambda t: t.name)
def test_samplers_are_reproducible_and_shaped(task):
    n = 50
    rng1, rng2 = np.random.default_rng(4), np.random.default_rng(4)
    if task.known_truth:
        a = task.pair.sample_p(rng1, n), task.pair.sample_q(rng1, n)
        b = task.pair.sample_p(rng2, n), task.pair.sample_q(rng2, n)
    else:
        a, b = task.pair.draw(rng1, n), task.pair.draw(rng2, n)
    for u, v in zip(a, b, strict=True):
        assert u.shape == (n, task.dim) and u.dtype == np.float64
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], a[1])


def check_shell_pair(pair):
    """[RP-3] P sits on the centres, every Q sample is at distance exactly 1 from its nearest
    centre, and pairing Q's samples with their centres gives clouds whose exact W1 is 1,
    attained by the optimal critic's dual value."""
    rng = np.random.default_rng(0)
    centres = np.zeros((len(pair.centres), pair.dim))
    centres[:, 0] = pair.centres
    p = pair.sample_p(rng, 300)
    assert np.min(np.linalg.norm(p[:, None] - centres[None], axis=-1), axis=1).max() == 0.0
    q = pair.sample_q(rng, 300)
    dist = np.linalg.norm(q[:, None] - centres[None], axis=-1)
    np.testing.assert_allclose(dist.min(axis=1), 1.0, rtol=1e-12)
    nearest = centres[np.argmin(dist, axis=1)]
    np.testing.assert_array_equal(pair.nearest_centre(q), nearest)
    assert ot.exact_w1(nearest, q).w1 == pytest.approx(1.0, rel=1e-12) == pair.true_w1
    f = pair.potential
    assert np.mean(f(nearest)) - np.mean(f(q)) == pytest.approx(1.0, rel=1e-12)
    # The optimal critic is 1-Lipschitz (spot check on random pairs).
    a, b = rng.standard_normal((2, 500, pair.dim)) * 2
    assert np.all(np.abs(f(a) - f(b)) <= np.linalg.norm(a - b, axis=1) + 1e-12)


@pytest.mark.parametrize("task", [t for t in tasks.WASSERSTEIN_TASKS if t.known_truth], ids=lambda t: t.name)
def test_shell_tasks_have_w1_one(task):
    check_shell_pair(task.pair)


class _UnnormalizedShell(tasks.ShellPair):
    """Planted bug: Gaussian directions not divided by their norm."""

    def sample_q(self, rng, n):
        return self._centres(rng, n) + rng.standard_normal((n, self.dim))


class _FlippedPotential(tasks.ShellPair):
    """Planted bug: the potential with the wrong sign (it maximizes E_Q f - E_P f)."""

    def potential(self, x):
        return -super().potential(x)


class _CentreOnAxis1(tasks.ShellPair):
    """Planted bug: centres placed along the second axis while Q's spheres use the first."""

    def sample_p(self, rng, n):
        return np.roll(self._centres(rng, n), 1, axis=1)


@pytest.mark.meta
@pytest.mark.parametrize("mutant", [_UnnormalizedShell, _FlippedPotential, _CentreOnAxis1],
                         ids=lambda m: m.__name__)
def test_shell_check_catches_planted_bugs(mutant):
    with pytest.raises(AssertionError):
        check_shell_pair(mutant(2, (-2.0, 0.0, 2.0)))


def test_shell_sampler_is_uniform():
    """Each centre drawn equally often; sphere directions unbiased; 1-D sphere is {-1, +1}."""
    rng = np.random.default_rng(1)
    cones = tasks.ShellPair(2, (-2.0, 0.0, 2.0))
    q = cones.sample_q(rng, 30000)
    counts = np.bincount(np.argmin(np.abs(q[:, :1] - np.array([[-2.0, 0.0, 2.0]])), axis=1), minlength=3)
    assert np.all(np.abs(counts / 30000 - 1 / 3) < 0.015), counts
    d = tasks.unit_sphere(rng, 20000, 128)
    assert np.abs(d.mean(axis=0)).max() < 0.03 and np.allclose(np.linalg.norm(d, axis=1), 1.0)
    s = tasks.unit_sphere(rng, 4000, 1)
    assert set(np.unique(s)) == {-1.0, 1.0} and abs(np.mean(s)) < 0.06


def test_shell_pair_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 \\* radius"):
        tasks.ShellPair(2, (0.0, 1.5))
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        tasks.ShellPair(0)
    with pytest.raises(ValueError, match="radius must be a positive number"):
        tasks.ShellPair(1, radius=0.0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        tasks.ShellPair(1).sample_q(np.random.default_rng(0), 0)
    with pytest.raises(ValueError, match="unknown Wasserstein task"):
        tasks.wasserstein_tasks(["abs", "nope"])


def test_chi_mean():
    """E||X|| for X ~ N(0, I_k), the 16-D pair's population W1 (reported beside the exact W1
    of the clouds): closed forms for k = 1 and a Monte Carlo estimate for k = 16."""
    x = np.random.default_rng(2).standard_normal((200000, 16))
    assert tasks.chi_mean(16) == pytest.approx(np.mean(np.linalg.norm(x, axis=1)), rel=2e-3)
    assert tasks.chi_mean(1) == pytest.approx(np.sqrt(2 / np.pi), rel=1e-12)


def test_critic_widths_for_a_mode():
    cones = tasks.wasserstein_tasks(["cones"])[0]
    full = {c.label: c.widths for c in cones.critics_for("full")}
    assert full["MaxMin"] == (312, 312, 312, 1)
    for c in cones.critics_for("quick"):
        assert c.widths[-1] == 1 and all(w % (c.group_size or 2) == 0 for w in c.widths[:-1])
    labels = [c.label for c in cones.critics]
    assert labels == ["ReLU", "MaxMin", "GroupSort(4)", "FullSort"]


def test_digits_split():
    d = tasks.load_digits_split(seed=0)
    n_train, n_test = len(d["y_train"]), len(d["y_test"])
    assert n_train + n_test == 1797 and d["x_train"].shape == (n_train, 64)
    assert d["x_train"].min() == 0.0 and d["x_train"].max() == 1.0
    # Stratified: every class's share of the test set within one point of its overall share.
    overall = np.bincount(np.concatenate([d["y_train"], d["y_test"]]), minlength=10) / 1797
    assert np.all(np.abs(np.bincount(d["y_test"], minlength=10) - overall * n_test) <= 1.0)
    again = tasks.load_digits_split(seed=0)
    np.testing.assert_array_equal(d["x_test"], again["x_test"])
    other = tasks.load_digits_split(seed=1)
    assert not np.array_equal(d["y_test"], other["y_test"])
    assert len(tasks.load_digits_split(seed=0, n_train=100)["y_train"]) == 100
    with pytest.raises(ValueError, match="test_fraction"):
        tasks.load_digits_split(test_fraction=1.0)


def test_jsonable_and_tables():
    doc = results.jsonable({"a": np.float32(0.5), "b": np.arange(3), "c": (1, np.nan), "d": -np.inf,
                            "e": np.bool_(True)})
    assert json.loads(json.dumps(doc, allow_nan=False)) == {"a": 0.5, "b": [0, 1, 2], "c": [1, "NaN"],
                                                            "d": "-Infinity", "e": True}
    table = results.markdown_table(["x", "y"], [["a", 0.123456], ["b", float("nan")]], digits=3)
    assert table.splitlines() == ["| x | y |", "|---|---|", "| a | 0.123 |", "| b | n/a |"]


def test_png_size(tmp_path):
    from reflip.reproduce import plotting

    fig = plotting.histograms({"a": np.arange(10.0)}, "t", "x", reference=1.0)
    fig.savefig(tmp_path / "h.png")
    assert results.png_size(tmp_path / "h.png") == (800, 500)
    (tmp_path / "bad.png").write_bytes(b"not a png at all, no header here")
    with pytest.raises(ValueError, match="not a PNG"):
        results.png_size(tmp_path / "bad.png")
