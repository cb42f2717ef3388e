"""reflip.nn at its edges: the one bad-input rule and the size bounds [NN-11], parameter files
that are not intact [NN-13], and the NaN policy [NN-14] for every function that takes inputs.

Oracles: the rule itself (exception kind and the parameter named), the batch without the NaN
row (rows are independent [NN-14] (c)), and NumPy on the clean rows."""
import json
import math
import pickle
import re
import time
import traceback
import warnings
import zipfile
from io import BytesIO

import numpy as np
import pytest

from reflip import nn, to_numpy
from reflip._validate import MAX_ITERATIONS
from reflip.bjorck import BjorckConvergenceError, BjorckConvergenceWarning
from reflip.nn import certify, io, layers, lipschitz, losses, optim, train

RNG = np.random.default_rng(20260412)


def _activation(act):
    return nn.Activation("group_sort", group_size=3) if act == "group_sort" else nn.Activation(act)


def _model(act="max_min"):
    """Two ``act`` layers between constrained Dense layers and a Scale: the layers the NaN
    proof walks through [NN-14]. (``abs`` alone would spread NaN into the gradient through
    ``sign(NaN)``; the other activations hide it.)"""
    return nn.Sequential([nn.Dense(4, 6, "bjorck", n_iter=20), _activation(act), nn.Dense(6, 6, "linf"),
                          _activation(act), nn.Dense(6, 3), nn.Scale(2.0)])


def _raises(exc, name, fn, *args, **kwargs):
    """``fn`` raises exactly ``exc`` and the message names ``name`` as a word."""
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert name in message, f"{message!r} does not name {name!r}"
    return message


# ----------------------------------------------------------------------------------------------
# The one rule and the bounds [NN-11]

BAD_DTYPES = [np.int32, "int32", np.int64, np.bool_, "bool", np.float16, "float16", np.longdouble,
              np.complex128, "complex64", object, 5, None, "x"]


@pytest.mark.parametrize("bad", BAD_DTYPES, ids=repr)
def test_init_refuses_every_dtype_but_float32_and_float64(bad):
    """[NN-11] int32 weights used to come back all zero without an error; now every dtype but
    float32/float64, and anything that is no dtype, is a TypeError naming ``dtype``."""
    _raises(TypeError, "dtype", _model().init, seed=0, dtype=bad)


@pytest.mark.parametrize("name, expected", [("float32", np.float32), (np.float32, np.float32),
                                             (np.dtype("float64"), np.float64), ("float64", np.float64)])
def test_init_takes_float_dtypes_by_name_or_object(name, expected):
    params = _model().init(seed=0, dtype=name)
    assert all(a.dtype == expected for p in params for a in p.values())
    assert any(np.any(p["W"]) for p in params if "W" in p)


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (1.5, TypeError), ("s", TypeError), (True, TypeError),
                                       ([1, 2], TypeError)])
def test_init_seed_is_named(seed, exc):
    """[NN-12] NumPy's SeedSequence messages named nothing ("expected non-negative integer")."""
    _raises(exc, "seed", _model().init, seed=seed)


@pytest.mark.parametrize("make", [np.random.default_rng, np.random.SeedSequence])
def test_init_from_a_generator_or_seed_sequence_is_reproducible(make):
    a = _model().init(seed=make(3))
    b = _model().init(seed=make(3))
    assert all(np.array_equal(p[k], q[k]) for p, q in zip(a, b, strict=True) for k in p)


@pytest.mark.parametrize("build, exc, name", [
    (lambda: nn.Dense(2.0, 3), TypeError, "in_features"),        # was ValueError, unlike n_iter=2.0
    (lambda: nn.Dense(3, True), TypeError, "out_features"),
    (lambda: nn.Dense(10**30, 1), ValueError, "in_features"),    # accepted until init failed in NumPy
    (lambda: nn.Dense(1, 10**30), ValueError, "out_features"),
    (lambda: nn.Dense(2**16, 2**16), ValueError, "in_features * out_features"),
    (lambda: nn.Dense(3, 3, constraint=5), TypeError, "constraint"),
    (lambda: nn.Dense(3, 3, init=None), TypeError, "init"),
    (lambda: nn.Dense(2, 2, "bjorck", n_iter=2.0), TypeError, "n_iter"),
    (lambda: nn.Dense(2, 2, "bjorck", n_iter=10**30), ValueError, "n_iter"),  # hung
    (lambda: nn.Dense(2, 2, "spectral", n_iter=10**30, tol=0.0), ValueError, "n_iter"),
    (lambda: nn.Activation(3), TypeError, "name"),
    (lambda: nn.Activation("group_sort", group_size=2.0), TypeError, "group_size"),
    (lambda: nn.Activation("group_sort", group_size=10**30), ValueError, "group_size"),
    (lambda: nn.Scale("2"), TypeError, "factor"),
    (lambda: nn.Scale(-1.0), ValueError, "factor"),
])
def test_constructors_follow_the_rule_and_bounds(build, exc, name):
    """[NN-11] wrong type -> TypeError, wrong value -> ValueError, the parameter named; nothing
    runs for long (n_iter is bounded before Dense runs its constraint on the probe)."""
    start = time.perf_counter()
    _raises(exc, name, build)
    assert time.perf_counter() - start < 2.0


def test_largest_layer_bound_is_stated():
    assert layers.MAX_PARAMETERS == 2**31
    nn.Dense(2**15, 2**16)  # exactly MAX_PARAMETERS entries: accepted (nothing is allocated)
    _raises(ValueError, "in_features * out_features", nn.Dense, 2**15 + 1, 2**16)


@pytest.mark.parametrize("call, exc, name", [
    (lambda o: optim.SGD("0.1"), TypeError, "lr"),
    (lambda o: optim.SGD(0.1, momentum=1.0), ValueError, "momentum"),
    (lambda o: optim.SGD(0.1, nesterov=1), TypeError, "nesterov"),
    (lambda o: optim.Adam(betas="ab"), TypeError, "betas"),
    (lambda o: optim.Adam(eps=0.0), ValueError, "eps"),
    (lambda o: optim.AggMo(0.1, betas=(0.5, "a")), TypeError, "betas[1]"),
    (lambda o: optim.step_decay(0.1, every=2.0), TypeError, "every"),
    (lambda o: optim.step_decay(0.1, factor=1.5, every=2), ValueError, "factor"),
    (lambda o: optim.SGD(lambda step: -1.0).lr(0), ValueError, "lr"),
    (lambda o: o["opt"].update(o["params"], [{k: v.astype(np.int64) for k, v in p.items()} for p in o["params"]],
                               o["opt"].init(o["params"])), TypeError, "grads[0]"),
    (lambda o: o["opt"].update(o["params"], [{k: v[:1] for k, v in p.items()} for p in o["params"]],
                               o["opt"].init(o["params"])), ValueError, "grads[0]"),
    (lambda o: o["opt"].update(o["params"], o["params"], None), TypeError, "state"),
    (lambda o: optim.global_norm([{"W": np.ones(3, dtype=np.int32)}]), TypeError, "tree[0]"),
    (lambda o: optim.global_norm("t"), TypeError, "tree"),
    (lambda o: optim.tree_map(None, o["params"]), TypeError, "fn"),
])
def test_optimizers_follow_the_rule(call, exc, name):
    """[NN-8] integer gradients used to be applied silently (and promoted the parameters)."""
    params = [{"W": RNG.standard_normal((2, 3)), "b": np.zeros(2)}]
    _raises(exc, name, call, {"opt": optim.SGD(0.1), "params": params})


def _classifier():
    model = nn.Sequential([nn.Dense(4, 6, "bjorck", n_iter=20), nn.Activation("max_min"), nn.Dense(6, 3)])
    return model, model.init(seed=1)


@pytest.mark.parametrize("call, exc, name", [
    (lambda m, p, x, y: m(p, x.astype(np.float16)), TypeError, "x"),
    (lambda m, p, x, y: m(p, x.astype(np.complex128)), TypeError, "x"),
    (lambda m, p, x, y: m(p, x.astype(bool)), TypeError, "x"),
    (lambda m, p, x, y: m.backward(m.forward(p, x)[1], np.ones((8, 3), np.int64)), TypeError, "y_bar"),
    (lambda m, p, x, y: m.backward(None, np.ones((8, 3))), TypeError, "residuals"),
    (lambda m, p, x, y: losses.cross_entropy(m(p, x).astype(np.float16), y), TypeError, "logits"),
    (lambda m, p, x, y: losses.multi_margin(m(p, x), y.astype(np.float64)), TypeError, "labels"),
    (lambda m, p, x, y: losses.multi_margin(m(p, x), y, margin="1"), TypeError, "margin"),
    (lambda m, p, x, y: losses.kr_dual(np.ones(3, np.int32), np.ones(3)), TypeError, "f_p"),
    (lambda m, p, x, y: losses.kr_dual(np.ones(3), [1.0, 2.0]), TypeError, "f_q"),
    (lambda m, p, x, y: certify.margins(m(p, x), y + 3), ValueError, "labels"),
    (lambda m, p, x, y: certify.certified_radius(m(p, x), y, "1"), TypeError, "L"),
    (lambda m, p, x, y: certify.certified_accuracy(m(p, x), y, 1.0, "a"), TypeError, "eps"),
    (lambda m, p, x, y: certify.certified_accuracy(m(p, x), y, 1.0, [0.1, "a"]), TypeError, "eps"),
    (lambda m, p, x, y: certify.pgd_attack(m, p, x.astype(np.int64), y, 0.1), TypeError, "x"),
    (lambda m, p, x, y: certify.pgd_attack(m, p, x, y, 0.1, steps=2.0), TypeError, "steps"),
    # Just above the bound: a missing bound then runs (and fails) instead of hanging;
    # it comes first so that a mutation run meets it before the case below.
    (lambda m, p, x, y: certify.pgd_attack(m, p, x, y, 0.1, steps=10_001), ValueError, "steps"),
    (lambda m, p, x, y: certify.pgd_attack(m, p, x, y, 0.1, steps=10**30), ValueError, "steps"),
    (lambda m, p, x, y: certify.pgd_attack(m, p, x, y, 0.1, seed=-1), ValueError, "seed"),
    (lambda m, p, x, y: certify.pgd_attack(m, p, x, y, 0.1, random_start=1), TypeError, "random_start"),
    (lambda m, p, x, y: lipschitz.operator_norm(np.ones((2, 2), np.int64)), TypeError, "w"),
    (lambda m, p, x, y: lipschitz.input_gradients(m, p, x, output=1.5), TypeError, "output"),
    (lambda m, p, x, y: lipschitz.input_gradients(m, p, x, output=y.astype(np.float64)), TypeError, "output"),
    (lambda m, p, x, y: lipschitz.input_gradients(m, p, x, output=np.int64(3)), ValueError, "output"),
    (lambda m, p, x, y: lipschitz.pair_ratios(m, p, x, x.astype(np.float32)), TypeError, "x2"),
    (lambda m, p, x, y: lipschitz.pair_ratios(m, p, x, x.astype(np.int64)), TypeError, "x2"),
    (lambda m, p, x, y: lipschitz.pair_ratios(m, p, x, seed="s"), TypeError, "seed"),
    (lambda m, p, x, y: lipschitz.pair_ratios(m, p, x, n_pairs=10**30), ValueError, "n_pairs"),
    (lambda m, p, x, y: lipschitz.describe(np.ones(3), rtol=-1.0), ValueError, "rtol"),
    (lambda m, p, x, y: io.save(5, p), TypeError, "path"),
    (lambda m, p, x, y: losses.cross_entropy(m(p, x), None), TypeError, "labels"),   # get_namespace skips None
    (lambda m, p, x, y: certify.margins(None, y), TypeError, "logits"),
    (lambda m, p, x, y: m.backward(m.forward(p, x)[1], np.float64(1.0)), ValueError, "y_bar"),
    (lambda m, p, x, y: lipschitz.upper_bound(None, p), TypeError, "model"),
    (lambda m, p, x, y: lipschitz.upper_bound(m, None), TypeError, "params"),
    (lambda m, p, x, y: lipschitz.upper_bound(m, p[:1]), ValueError, "params"),
    (lambda m, p, x, y: lipschitz.jacobians("model", p, x), TypeError, "model"),
    (lambda m, p, x, y: lipschitz.pair_ratios(m, p, 1j), TypeError, "x"),
    (lambda m, p, x, y: certify.pgd_attack(None, p, x, y, 0.1), TypeError, "model"),
    (lambda m, p, x, y: certify.check_certificates(m, "p", x, y, 0.1, 1.0), TypeError, "params"),
    (lambda m, p, x, y: m.freeze([{"W": "a", "b": "b"}, {}, {}]), TypeError, "params[0]['W']"),
    (lambda m, p, x, y: nn.Sequential(None), TypeError, "layers"),
    (lambda m, p, x, y: nn.Sequential([m.layers[0], "relu"]), TypeError, "layers[1]"),
    (lambda m, p, x, y: m.init(xp="numpy"), TypeError, "xp"),
    (lambda m, p, x, y: train.supervised_objective(m, "cross_entropy", margin=0.3), TypeError, "margin"),
    (lambda m, p, x, y: train.supervised_objective(m, "multi_margin", margin=-1.0), ValueError, "margin"),
    (lambda m, p, x, y: train.kr_objective(None), TypeError, "model"),
    (lambda m, p, x, y: io.model_from_config({"type": "Sequential", "layers": [{"type": "Nope"}]}), ValueError,
     "config"),
    (lambda m, p, x, y: io.model_from_config({"type": "Sequential", "layers": [{"type": "Dense", "in_features": -1,
                                                                                 "out_features": 2}]}),
     ValueError, "config['layers'][0]"),
    (lambda m, p, x, y: io.model_from_config({"type": "Sequential", "layers": [{"type": "Dense", "in_features": 2}]}),
     TypeError, "config['layers'][0]"),
    (lambda m, p, x, y: io.save("unused.npz", [{"W": np.ones(2, np.int32)}]), TypeError, "params[0]"),
])
def test_entry_points_follow_the_rule(call, exc, name):
    """[NN-11] every entry point that takes arrays refuses dtypes other than float32/float64
    (integer arrays where they are labels or indices), every scalar follows the one rule."""
    model, params = _classifier()
    x, y = RNG.standard_normal((8, 4)), RNG.integers(0, 3, 8)
    _raises(exc, name, call, model, params, x, y)


@pytest.mark.parametrize("kwargs, exc, name", [
    ({"steps": 2.0}, TypeError, "steps"), ({"steps": 10**30}, ValueError, "steps"),
    ({"steps": 1, "seed": -1}, ValueError, "seed"), ({"steps": 1, "seed": "s"}, TypeError, "seed"),
    ({"steps": 1, "clip_norm": "1"}, TypeError, "clip_norm"), ({"steps": 1, "progress": "no"}, TypeError, "progress"),
    ({"steps": 1, "loss": 3}, TypeError, "loss"),
])
def test_fit_arguments_follow_the_rule(kwargs, exc, name):
    model, params = _classifier()
    data = [(RNG.standard_normal((8, 4)), RNG.integers(0, 3, 8))]
    _raises(exc, name, train.fit, model, params, data, optim.SGD(0.1), **{"progress": False, **kwargs})
    _raises(TypeError, "batch_size", train.minibatches, data[0][0], batch_size=1.5)


def test_dense_trains_without_convergence_warnings():
    """Training under-iterates Björck on purpose: a Dense layer opts out of the warning (the
    bounds use the exact norm of W_eff [NN-3]); the user can opt back in."""
    model = nn.Sequential([nn.Dense(6, 6, "bjorck", n_iter=3), nn.Activation("max_min"), nn.Dense(6, 1, "unit_row")])
    params = [{k: v * 3.0 for k, v in p.items()} for p in model.init(seed=0)]
    x = RNG.standard_normal((5, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, res = model.forward(params, x)
        model.backward(res, np.ones((5, 1)))
    loud = nn.Dense(6, 6, "bjorck", n_iter=3, on_nonconvergence="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loud.forward(params[0], x, np)
    assert any(issubclass(w.category, BjorckConvergenceWarning) for w in caught)
    # The construction probe's convergence says nothing about the weights: "raise" applies to
    # real runs only (it used to raise while the model was being built).
    strict = nn.Dense(6, 6, "bjorck", n_iter=3, on_nonconvergence="raise")
    with pytest.raises(BjorckConvergenceError):
        strict.forward(params[0], x, np)


# ----------------------------------------------------------------------------------------------
# Parameter files [NN-13]


def _good_file(tmp_path):
    model, params = _classifier()
    path = tmp_path / "good.npz"
    io.save(path, params, model)
    return path, params


def _corrupt_files(tmp_path):
    """Name -> path of a file that is not an intact parameter file."""
    path, params = _good_file(tmp_path)
    good = path.read_bytes()
    files = {"empty": b"", "truncated": good[: len(good) // 2], "random": RNG.bytes(300),
             "zip-header-then-junk": b"PK\x03\x04" + RNG.bytes(100), "pickle": pickle.dumps({"W": [1.0]})}
    # A byte of W's data flipped: the archive is intact but the entry's CRC-32 fails.
    w = params[0]["W"].tobytes()
    at = good.index(w) + 3
    files["bad-crc"] = good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1:]
    out = {name: tmp_path / f"{name}.npz" for name in files}
    for name, content in files.items():
        out[name].write_bytes(content)
    np.save(tmp_path / "one.npy", np.ones(3))
    out["npy"] = tmp_path / "one.npy"
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    out["pickled-npy"] = tmp_path / "objects.npy"
    header = json.dumps({"format": "reflip.nn/1", "n_layers": 1})
    np.savez(tmp_path / "object-entry.npz", **{"0/W": np.array([{"a": 1}], dtype=object),
                                               "__model__": np.asarray(header)})
    out["object-entry"] = tmp_path / "object-entry.npz"
    np.savez(tmp_path / "int-entry.npz", **{"0/W": np.ones((2, 2), np.int64), "__model__": np.asarray(header)})
    out["int-entry"] = tmp_path / "int-entry.npz"
    np.savez(tmp_path / "huge-header.npz", __model__=np.asarray(json.dumps({"format": "reflip.nn/1",
                                                                            "n_layers": 10**12})))
    out["huge-header"] = tmp_path / "huge-header.npz"
    np.savez(tmp_path / "not-json.npz", __model__=np.asarray("{"))
    out["not-json"] = tmp_path / "not-json.npz"
    bad_model = {"format": "reflip.nn/1", "n_layers": 1,
                 "model": {"type": "Sequential", "layers": [{"type": "Dense", "in_features": 2, "out_features": 2,
                                                             "constraint": "bjorck", "n_iter": 10**30}]}}
    np.savez(tmp_path / "bad-model.npz", **{"0/W": np.eye(2), "0/b": np.zeros(2),
                                            "__model__": np.asarray(json.dumps(bad_model))})
    out["bad-model"] = tmp_path / "bad-model.npz"
    return out


CORRUPT = ["empty", "truncated", "random", "zip-header-then-junk", "pickle", "bad-crc", "npy", "pickled-npy",
           "object-entry", "int-entry", "huge-header", "not-json", "bad-model"]


# load reads the parameters only: a model description it never builds cannot fail it.
READS = [(io.load, name) for name in CORRUPT if name != "bad-model"] + [(io.load_model, name) for name in CORRUPT]


@pytest.mark.parametrize("reader, name", READS, ids=[f"{r.__name__}-{n}" for r, n in READS])
def test_corrupt_files_raise_one_valueerror_naming_the_file(tmp_path, reader, name):
    """[NN-13] BadZipFile, EOFError, "Bad CRC-32" and NumPy's allow_pickle advice used to reach
    the user; now one ValueError naming the path, with nothing about allow_pickle anywhere in
    the traceback, and never a pickle loaded."""
    path = _corrupt_files(tmp_path)[name]
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        reader(path)
    assert time.perf_counter() - start < 2.0
    assert type(info.value) is ValueError
    assert str(path) in str(info.value)
    shown = "".join(traceback.format_exception(info.type, info.value, info.tb))
    assert "allow_pickle" not in shown


def test_corrupt_file_messages_say_what_is_wrong(tmp_path):
    files = _corrupt_files(tmp_path)
    for name, words in [("empty", "empty"), ("random", "zip header"), ("npy", ".npy"), ("bad-crc", "CRC"),
                        ("object-entry", "object array"), ("int-entry", "int64"), ("huge-header", "n_layers"),
                        ("truncated", "truncated"), ("bad-model", "n_iter")]:
        with pytest.raises(ValueError, match=words):
            io.load_model(files[name])


def test_unopenable_paths_keep_their_documented_kinds(tmp_path):
    """[NN-13] a missing file is FileNotFoundError (the kind Python documents); a non-path
    is a TypeError naming path (an int used to be opened as a file descriptor by NumPy)."""
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "missing.npz")
    for bad in (5, None, 1.5):
        _raises(TypeError, "path", io.load, bad)
    path, params = _good_file(tmp_path)
    model, loaded = io.load_model(path)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(loaded, params, strict=True) for k in a)


# ----------------------------------------------------------------------------------------------
# NaN [NN-14]


def _nan_batch(n=7, row=2, col=1):
    x = RNG.standard_normal((n, 4))
    x[row, col] = np.nan
    return x, np.arange(n) != row


@pytest.mark.parametrize("act", ["max_min", "group_sort", "full_sort", "relu", "abs"])
def test_a_nan_row_gives_nan_in_every_per_row_quantity(act):
    """[NN-14] (a)-(c): the NaN row's output, gradients, Jacobians, norms and local constants
    are NaN (they used to be finite and plausible: GroupSort passes a NaN group through as a
    permutation); the other rows equal those of the batch without it."""
    check_nan_policy(_model(act))


def check_nan_policy(model):
    params = model.init(seed=4)
    x, keep = _nan_batch()
    clean = x[keep]
    y, res = model.forward(params, x)
    assert np.isnan(y[~keep]).all() and np.isfinite(y[keep]).all()
    assert np.isnan(model(params, x)[~keep]).all()
    x_bar, grads = model.backward(res, np.ones_like(y))
    assert np.isnan(x_bar[~keep]).all()
    np.testing.assert_allclose(x_bar[keep], model.backward(model.forward(params, clean)[1],
                                                           np.ones((len(clean), 3)))[0], rtol=1e-12, atol=1e-14)
    for fn, kwargs in [(lipschitz.jacobians, {}), (lipschitz.input_gradients, {"output": 1}),
                       (lipschitz.input_gradient_norms, {"output": 0, "p": math.inf}),
                       (lipschitz.local_lipschitz, {}), (lipschitz.local_lipschitz, {"p": math.inf})]:
        got, ref = fn(model, params, x, **kwargs), fn(model, params, clean, **kwargs)
        assert np.isnan(got[~keep]).all(), fn.__name__
        np.testing.assert_allclose(got[keep], ref, rtol=1e-12, atol=1e-14, err_msg=fn.__name__)
    assert math.isnan(lipschitz.gradient_lower_bound(model, params, x))
    assert math.isfinite(lipschitz.gradient_lower_bound(model, params, clean))


def test_nan_reaches_ratios_activity_and_summaries():
    """[NN-14] a pair with a NaN row used to get ratio 0 (``dist > 0`` is false for NaN)."""
    model = _model("relu")
    params = model.init(seed=5)
    x, keep = _nan_batch()
    x2 = RNG.standard_normal(x.shape)
    ratios = lipschitz.pair_ratios(model, params, x, x2)
    assert np.isnan(ratios[~keep]).all() and np.isfinite(ratios[keep]).all()
    np.testing.assert_allclose(ratios[keep], lipschitz.pair_ratios(model, params, x[keep], x2[keep]), rtol=1e-12)
    assert math.isnan(lipschitz.pair_lower_bound(model, params, x, x2))
    relu = nn.Sequential([nn.Dense(4, 6), nn.Activation("relu"), nn.Dense(6, 2)])
    rp = relu.init(seed=0)
    activity = lipschitz.unit_activity(relu, rp, x)
    assert activity and all(math.isnan(a["never"]) and math.isnan(a["always"]) for a in activity)
    assert all(0 <= a["never"] <= 1 for a in lipschitz.unit_activity(relu, rp, x[keep]))
    summary = lipschitz.describe(np.array([1.0, np.nan, 0.5]))
    assert summary["n"] == 3 and all(math.isnan(v) for k, v in summary.items() if k != "n")
    w = np.eye(3)
    w[1, 2] = np.nan
    for p in (1, 2, math.inf):
        assert math.isnan(lipschitz.operator_norm(w, p))  # p = 2 raised LinAlgError (SVD)


def test_nan_logits_are_neither_correct_nor_certified():
    """[NN-14] margins and radii of a NaN row are NaN; certified accuracy and the certificate
    check count the row as neither correct nor certified."""
    model, params = _classifier()
    x, keep = _nan_batch(n=9, row=4)
    labels = RNG.integers(0, 3, 9)
    logits = model(params, x)
    assert np.isnan(certify.margins(logits, labels)[~keep]).all()
    radius = certify.certified_radius(logits, labels, 1.0)
    assert np.isnan(radius[~keep]).all() and np.all(radius[keep] >= 0)
    eps = [0.0, 0.1]
    clean = certify.certified_accuracy(logits[keep], labels[keep], 1.0, eps)
    np.testing.assert_allclose(certify.certified_accuracy(logits, labels, 1.0, eps), clean * keep.sum() / len(keep))
    report = certify.check_certificates(model, params, x, labels, 0.05, 1.0, steps=3)
    ref = certify.check_certificates(model, params, x[keep], labels[keep], 0.05, 1.0, steps=3)
    assert (report["correct"], report["certified"]) == (ref["correct"], ref["certified"])
    adv = certify.pgd_attack(model, params, x, labels, 0.1, steps=4, random_start=False)
    np.testing.assert_array_equal(adv[~keep], x[~keep])  # returned as it is, NaN included
    np.testing.assert_allclose(adv[keep], certify.pgd_attack(model, params, x[keep], labels[keep], 0.1, steps=4,
                                                             random_start=False), rtol=1e-12, atol=1e-14)


def test_nan_logits_give_nan_losses_and_cotangent_rows():
    """[NN-14] the hinge's active set read ``NaN > 0`` as 0: a zero, plausible cotangent row."""
    logits = RNG.standard_normal((5, 3))
    logits[1, 2] = np.nan
    labels = np.array([0, 1, 2, 0, 1])
    for fwd, bwd, kw in [(losses.multi_margin_fwd, losses.multi_margin_bwd, {"margin": 0.3}),
                         (losses.cross_entropy_fwd, losses.cross_entropy_bwd, {})]:
        value, res = fwd(logits, labels, **kw)
        assert math.isnan(float(value))
        g = bwd(res, 1.0)
        assert np.isnan(g[1]).all() and np.isfinite(np.delete(g, 1, axis=0)).all(), fwd.__name__
    assert math.isnan(float(losses.kr_dual(np.array([1.0, np.nan]), np.array([0.0]))))


def _toy_data(bad_step=None, what="x"):
    batches = []
    for step in range(3):
        x, y = RNG.standard_normal((8, 4)), RNG.integers(0, 3, 8)
        if step == bad_step:
            x[[1, 5], 2] = np.nan if what == "x" else np.inf
        batches.append((x, y))
    return batches


@pytest.mark.parametrize("what", ["x", "inf"])
def test_fit_names_the_data_when_the_data_is_not_finite(what):
    """[NN-14] ``fit`` used to advise lowering the learning rate on NaN data."""
    model, params = _classifier()
    with pytest.raises(ValueError) as info, np.errstate(invalid="ignore"):  # inf * 0 in the matmul
        train.fit(model, params, _toy_data(bad_step=1, what=what), optim.SGD(0.1), steps=3, progress=False)
    message = str(info.value)
    for words in ("data", "step 1", "2 non-finite", "x (batch[0]", "(8, 4)"):
        assert words in message, message
    assert "learning rate" not in message


def test_fit_names_the_critic_samples_and_the_parameters():
    model = nn.Sequential([nn.Dense(4, 4, "bjorck", n_iter=20), nn.Activation("max_min"), nn.Dense(4, 1, "unit_row")])
    params = model.init(seed=0)
    x_p, x_q = RNG.standard_normal((6, 4)), RNG.standard_normal((6, 4))
    x_q[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite \(NaN or inf\) entry in x_q \(batch\[1\]"):
        train.fit(model, params, [(x_p, x_q)], optim.SGD(0.1), loss="kr_dual", steps=1, progress=False)
    bad = [dict(p) for p in params]
    bad[0]["b"] = np.full(4, np.nan)
    with pytest.raises(ValueError, match=r"params: .*params\[0\]\['b'\] holds NaN or inf before the first update"):
        train.fit(model, bad, [(x_p, x_p)], optim.SGD(0.1), loss="kr_dual", steps=1, progress=False)


def test_fit_names_the_batch_or_the_parameters_a_step_refuses():
    """A named loss refusing a batch used to report "x must have shape ..." without saying that
    the data (not a parameter of fit) were at fault; NaN initial weights reached Björck's "w
    must be finite"."""
    model, params = _classifier()
    wide = [(RNG.standard_normal((8, 5)), RNG.integers(0, 3, 8))]
    with pytest.raises(ValueError, match=r"data: the batch of step 0 \(expected a pair \(x, labels\)\) was "
                                         r"refused: x must have shape \(batch, 4\)"):
        train.fit(model, params, wide, optim.SGD(0.1), steps=1, progress=False)
    bad = [dict(p) for p in params]
    bad[0]["W"] = np.full_like(bad[0]["W"], np.nan)
    with pytest.raises(ValueError, match=r"params: params\[0\]\['W'\] holds NaN or inf before the first update"):
        train.fit(model, bad, _toy_data(), optim.SGD(0.1), steps=1, progress=False)


def test_fit_keeps_the_learning_rate_advice_for_divergence():
    """Finite data, finite parameters: a diverging run is the optimisation's fault."""
    model, params = _classifier()
    data = [(RNG.standard_normal((8, 4)) * 1e300, RNG.integers(0, 3, 8))] * 3
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        with np.errstate(all="ignore"):
            train.fit(model, params, data, optim.SGD(1e300), loss="multi_margin", steps=3, progress=False)


def test_max_iterations_is_the_bound_used():
    assert MAX_ITERATIONS == 10_000
    _raises(ValueError, str(MAX_ITERATIONS), nn.Dense, 2, 2, "bjorck", n_iter=MAX_ITERATIONS + 1)



def _archive(path, header, **entries):
    """An ``.npz`` written by NumPy with ``header`` (JSON-encoded unless an array) stored
    first as ``__model__``, then ``entries``."""
    model = header if isinstance(header, np.ndarray) else np.asarray(json.dumps(header))
    np.savez(path, __model__=model, **entries)
    return path


def _message(path, what):
    """The one ValueError's full text for a file that is not a parameter file [NN-13]."""
    return "^" + re.escape(f"{path}: {what}; expected a parameter file written by reflip.nn.save") + "$"


@pytest.mark.parametrize("call, exc, words", [
    (lambda p: io.save(p, {"W": np.ones(2)}), TypeError,
     "params must be a list of dicts of arrays (one per layer), got dict"),
    (lambda p: io.save(p, [], model="net"), TypeError, "model must be a reflip.nn.Sequential or None, got str"),
    (lambda p: io.save(p, [{}, [np.ones(2)]]), TypeError, "params[1] must be a dict, got list"),
    (lambda p: io.save(p, [{"a/b": np.ones(2)}]), ValueError,
     "params[0]['a/b']: parameter names must be identifiers (letters, digits, _)"),
    (lambda p: io.save(p, [{}, {1: np.ones(2)}]), ValueError,
     "params[1][1]: parameter names must be identifiers (letters, digits, _)"),
    (lambda p: io.load(5), TypeError, "path must be a str or os.PathLike, got 5 (int)"),
    (lambda p: io.model_from_config([]), TypeError, "config must be a dict (Sequential.config()), got list"),
    (lambda p: io.model_from_config({"type": "Dense"}), ValueError,
     "config: expected a Sequential description, got type 'Dense'"),
    (lambda p: io.model_from_config({"type": "Sequential", "layers": "Dense"}), ValueError,
     "config['layers'] must be a list of layer descriptions"),
    (lambda p: io.model_from_config({"type": "Sequential", "layers": [{"in_features": 2}]}), ValueError,
     "config['layers'][0] must be a dict with a 'type', got {'in_features': 2}"),
    (lambda p: io.model_from_config({"type": "Sequential", "layers": [{"type": "Scale", "factor": 2.0, 1: 3}]}),
     ValueError, "config['layers'][0]: keys must be strings, got [\"'factor'\", '1']"),
])
def test_save_and_model_from_config_messages(tmp_path, call, exc, words):
    """[NN-13] the rule's messages in full: the argument, what it got, what was expected."""
    path = tmp_path / "out.npz"
    with pytest.raises(exc, match="^" + re.escape(words) + "$") as info:
        call(path)
    assert type(info.value) is exc
    assert not path.exists()


HEADER = {"format": "reflip.nn/1", "n_layers": 1}
BAD_HEADERS = [
    (np.asarray(["{}"]), "the '__model__' entry must be a JSON string, got an array of dtype <U2"),
    (np.arange(3), "the '__model__' entry must be a JSON string, got an array of dtype int64"),
    (np.asarray("{"), "the '__model__' entry is not valid JSON"),
    ({"format": "reflip.nn/2", "n_layers": 0}, "unknown format 'reflip.nn/2', expected 'reflip.nn/1'"),
    ({"n_layers": 0}, "unknown format None, expected 'reflip.nn/1'"),
    ([1, 2], "unknown format 'list', expected 'reflip.nn/1'"),
    ({"format": "reflip.nn/1", "n_layers": True}, "n_layers must be an integer in [0, 100000], got True"),
    ({"format": "reflip.nn/1", "n_layers": "3"}, "n_layers must be an integer in [0, 100000], got '3'"),
    ({"format": "reflip.nn/1", "n_layers": 2.0}, "n_layers must be an integer in [0, 100000], got 2.0"),
    ({"format": "reflip.nn/1", "n_layers": -1}, "n_layers must be an integer in [0, 100000], got -1"),
    ({"format": "reflip.nn/1", "n_layers": 100_001}, "n_layers must be an integer in [0, 100000], got 100001"),
    ({"format": "reflip.nn/1"}, "n_layers must be an integer in [0, 100000], got None"),
]


@pytest.mark.parametrize("header, what", BAD_HEADERS, ids=range(len(BAD_HEADERS)))
def test_bad_headers_say_what_is_wrong(tmp_path, header, what):
    path = _archive(tmp_path / "bad.npz", header)
    for reader in (io.load, io.load_model):
        with pytest.raises(ValueError, match=_message(path, what)) as info:
            reader(path)
        assert type(info.value) is ValueError


def test_layer_counts_at_their_bounds(tmp_path):
    """[NN-13] n_layers in [0, MAX_LAYERS]: both ends load (an empty list; MAX_LAYERS empty
    dicts, quickly)."""
    assert io.MAX_LAYERS == 100_000
    io.save(tmp_path / "none.npz", [])
    assert io.load(tmp_path / "none.npz") == []
    path = _archive(tmp_path / "most.npz", {"format": "reflip.nn/1", "n_layers": io.MAX_LAYERS})
    start = time.perf_counter()
    params = io.load(path)
    assert time.perf_counter() - start < 2.0
    assert len(params) == io.MAX_LAYERS and all(p == {} for p in params)


def _npy_bytes(a):
    buffer = BytesIO()
    np.save(buffer, a)
    return buffer.getvalue()


def test_bad_entries_say_what_is_wrong(tmp_path):
    w = np.ones((2, 2))
    for entries, what in [({"junk": w}, "unexpected entry 'junk'"), ({"1/W": w}, "unexpected entry '1/W'"),
                          ({"0/W": w, "0/b.x": w[0]}, "unexpected entry '0/b.x'")]:
        path = _archive(tmp_path / "bad.npz", HEADER, **entries)
        with pytest.raises(ValueError, match=_message(path, what)):
            io.load(path)
    # A .npy whose data is cut short: NumPy's ValueError, no pickle involved.
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("0/W.npy", _npy_bytes(w)[:-8])
        archive.writestr("__model__.npy", _npy_bytes(np.asarray(json.dumps(HEADER))))
    with pytest.raises(ValueError, match=_message(path, "entry '0/W' is not a valid .npy array")):
        io.load(path)
    # A member without the .npy header at all: NumPy returns its bytes, which are no array.
    for key in ("__model__", "0/W"):
        path = tmp_path / "raw.npz"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("0/W.npy", b"garbage" if key == "0/W" else _npy_bytes(w))
            archive.writestr("__model__.npy", b"garbage" if key == "__model__" else
                             _npy_bytes(np.asarray(json.dumps(HEADER))))
        with pytest.raises(ValueError, match=_message(path, f"entry '{key}' is not a valid .npy array")):
            io.load(path)


def test_entries_after_the_header_are_read(tmp_path):
    """np.savez keeps the order it is given: a header stored first still leaves every entry read."""
    w, b = RNG.standard_normal((3, 2)), RNG.standard_normal(3).astype(np.float32)
    path = _archive(tmp_path / "first.npz", {"format": "reflip.nn/1", "n_layers": 2}, **{"0/W": w, "1/b": b})
    assert list(np.load(path).files)[0] == "__model__"
    params = io.load(path)
    assert [sorted(p) for p in params] == [["W"], ["b"]]
    assert np.array_equal(params[0]["W"], w)
    assert params[1]["b"].dtype == np.float32 and np.array_equal(params[1]["b"], b)


def test_load_into_another_array_module(tmp_path):
    """``xp=``: the arrays come back as arrays of that module, unchanged (load and load_model)."""
    import array_api_strict as xps

    path, params = _good_file(tmp_path)
    for loaded in (io.load(path, xp=xps), io.load_model(path, xp=xps)[1]):
        for a, b in zip(loaded, params, strict=True):
            assert set(a) == set(b)
            for k in a:
                assert type(a[k]).__module__.startswith("array_api_strict"), type(a[k])
                assert np.array_equal(to_numpy(a[k]), b[k])
    assert all(type(a).__module__ == "numpy" for p in io.load(path) for a in p.values())


def test_corrupt_archive_messages_in_full(tmp_path):
    files = _corrupt_files(tmp_path)
    plain = tmp_path / "plain.npz"
    plain.write_bytes(b"hello world, not a zip")
    for path, what in [
        (files["empty"], "the file is empty"),
        (plain, "not an .npz archive: it does not start with a zip header"),
        (files["npy"], "not an .npz archive (a .npy file: one array, no model description): it does not start "
                       "with a zip header"),
        (files["bad-crc"], "a corrupted or truncated .npz archive (BadZipFile: Bad CRC-32 for file '0/W.npy')"),
    ]:
        with pytest.raises(ValueError, match=_message(path, what)):
            io.load(path)


def test_a_message_mentioning_pickle_is_never_passed_on(tmp_path):
    """[NN-13] NumPy's and zipfile's messages reach the user only when they say nothing about
    pickles: an entry named ``pickle`` whose data fails its CRC is reported as unreadable."""
    w = RNG.standard_normal((2, 2))
    path = _archive(tmp_path / "crc.npz", HEADER, **{"0/pickle": w})
    good = path.read_bytes()
    at = good.index(w.tobytes()) + 3
    path.write_bytes(good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1:])
    with pytest.raises(ValueError, match=_message(path, "a corrupted or truncated .npz archive (BadZipFile: "
                                                        "unreadable entry)")):
        io.load(path)


def test_model_descriptions_that_do_not_fit_the_parameters(tmp_path):
    """[NN-13] load_model checks the parameters against the model it builds: the layer count,
    then the shapes, naming the layer; a description that builds no model names its error."""
    dense = nn.Dense(2, 3).config()
    files = _corrupt_files(tmp_path)
    for header, entries, what in [
        ({"format": "reflip.nn/1", "n_layers": 1,
          "model": {"type": "Sequential", "layers": [dense, {"type": "Scale", "factor": 2.0}]}},
         {"0/W": np.ones((3, 2)), "0/b": np.ones(3)}, "the model has 2 layers but the file 1 parameter entries"),
        ({"format": "reflip.nn/1", "n_layers": 1, "model": {"type": "Sequential", "layers": [dense]}},
         {"0/W": np.ones((3, 3)), "0/b": np.ones(3)},
         "params[0] of Dense(2, 3, constraint='none') has shapes {'W': (3, 3), 'b': (3,)}, expected "
         "{'W': (3, 2), 'b': (3,)}"),
    ]:
        path = _archive(tmp_path / "misfit.npz", header, **entries)
        with pytest.raises(ValueError, match="^" + re.escape(f"{path}: {what}") + "$"):
            io.load_model(path)
    with pytest.raises(ValueError, match=re.escape(f"{files['bad-model']}: the model description does not build a "
                                                   f"model (ValueError: config['layers'][0] (Dense): n_iter")):
        io.load_model(files["bad-model"])
