"""reflip.nn models: construction and call-time errors [NN-11], initialization [NN-12],
forward = call = frozen model, inputs never modified, parameter files [NN-13]."""
import copy
import math
import re
import types
import warnings

import numpy as np
import pytest

from reflip import nn, to_numpy
from reflip.nn import certify, lipschitz, losses

RNG = np.random.default_rng(20190601)


def _mlp(constraint="bjorck", act="max_min", widths=(6, 8, 4), **options):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Dense(a, b, constraint, **options))
        if i < len(widths) - 2:
            layers.append(nn.Activation(act))
    return nn.Sequential(layers)


# ----------------------------------------------------------------------------------------------
# Construction [NN-11]


@pytest.mark.parametrize("build, exc, words", [
    (lambda: nn.Dense(0, 3), ValueError, "in_features must be >= 1, got 0"),
    (lambda: nn.Dense(3, 2.5), TypeError, r"out_features must be an integer, got 2.5 \(float\)"),
    (lambda: nn.Dense(3, 3, "orthogonal"), ValueError, r"constraint must be one of \('bjorck'"),
    (lambda: nn.Dense(3, 3, bias=1), TypeError, "bias must be True or False"),
    (lambda: nn.Dense(3, 3, init="xavier"), ValueError, r"init must be one of \('orthogonal', 'normal'\)"),
    (lambda: nn.Dense(3, 3, "linf", order=2), TypeError,
     r"Dense\(constraint='linf'\) got unexpected option\(s\) \['order'\]; its options are \['radius', 'threshold'\]"),
    (lambda: nn.Dense(3, 3, "none", radius=2.0), TypeError, "its options are none"),
    (lambda: nn.Dense(3, 3, "bjorck", order=0), ValueError, "order must be >= 1, got 0"),
    (lambda: nn.Dense(3, 3, "bjorck", backward="exact"), ValueError,
     r"backward must be one of \('unrolled', 'implicit'\)"),
    (lambda: nn.Dense(3, 3, "linf", threshold="paper"), ValueError, "threshold must be one of"),
    (lambda: nn.Dense(3, 3, "linf", radius=-1.0), ValueError, "radius must be a finite number > 0"),
    (lambda: nn.Dense(3, 3, "pinf"), TypeError, r"Dense\(constraint='pinf'\) needs the option p"),
    (lambda: nn.Dense(3, 3, "pinf", p=3), ValueError, "p must be 1, 2 or inf"),
    (lambda: nn.Dense(3, 3, "spectral", convention="torch"), ValueError, "convention must be one of"),
    (lambda: nn.Dense(3, 2, "unit_row"), ValueError, "constraint='unit_row' needs out_features=1"),
    (lambda: nn.Activation("tanh"), ValueError, r"name must be one of \('group_sort'"),
    (lambda: nn.Activation("group_sort"), TypeError, r"Activation\('group_sort'\) needs group_size"),
    (lambda: nn.Activation("group_sort", group_size=0), ValueError, "group_size must be >= 1, got 0"),
    (lambda: nn.Activation("max_min", group_size=2), TypeError, "group_size applies to 'group_sort' only"),
    (lambda: nn.Scale(0.0), ValueError, "factor must be > 0.0, got 0.0"),
    (lambda: nn.Scale(math.inf), ValueError, "factor must be a finite number, got inf"),
    (lambda: nn.Sequential([]), ValueError, "layers must hold at least one layer"),
    (lambda: nn.Sequential([nn.Activation("relu")]), ValueError, "must include a Dense layer"),
    (lambda: nn.Sequential([nn.Dense(3, 3), "relu"]), TypeError, r"layers\[1\] must be a reflip.nn layer"),
    (lambda: nn.Sequential([nn.Dense(4, 6), nn.Dense(5, 2)]), ValueError,
     "layer 1: Dense.* expects 5 input features but the previous layers output 6"),
    (lambda: nn.Sequential([nn.Dense(4, 6), nn.Activation("group_sort", group_size=4)]), ValueError,
     "layer 1: .* needs a width divisible by its group size 4, got width 6"),
    (lambda: nn.Sequential([nn.Dense(4, 5), nn.Activation("max_min")]), ValueError,
     "divisible by its group size 2, got width 5"),
    (lambda: nn.Sequential([nn.Dense(4, 6), nn.Activation("relu"), nn.Dense(6, 2, "pinf", p=2)]), ValueError,
     r"layer 2: constraint='pinf' .* first Dense layer only \(layer 0\)"),
])
def test_construction_errors(build, exc, words):
    """[NN-11] impossible models fail when they are built, naming the layer and the value."""
    with pytest.raises(exc, match=words):
        build()


def test_valid_positions_are_accepted():
    """[NN-11] pinf on the first Dense layer (after an input Scale), unit_row on one output,
    group sizes that divide the width, full_sort on any width."""
    model = nn.Sequential([nn.Scale(0.5), nn.Dense(4, 6, "pinf", p=math.inf), nn.Activation("group_sort", group_size=3),
                           nn.Activation("full_sort"), nn.Dense(6, 5, "linf"), nn.Activation("full_sort"),
                           nn.Dense(5, 1, "unit_row")])
    assert (model.in_features, model.out_features) == (4, 1)


# ----------------------------------------------------------------------------------------------
# Call-time errors [NN-11]


def test_call_time_errors():
    model = _mlp()
    params = model.init(seed=0)
    x = RNG.standard_normal((3, 6))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 6\) for this model, got \(3, 5\)"):
        model(params, x[:, :5])
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 6\)"):
        model.forward(params, x[0])
    with pytest.raises(TypeError, match="x has dtype float32 but the parameters have dtype float64"):
        model(params, x.astype(np.float32))
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int64"):
        model(params, x.astype(np.int64))
    with pytest.raises(ValueError, match="params must be a list of 3 dicts"):
        model(params[:2], x)
    bad = copy.deepcopy(params)
    del bad[0]["b"]
    with pytest.raises(ValueError, match=r"params\[0\] \(Dense.*\) must be a dict with keys \['W', 'b'\], got \['W'\]"):
        model(bad, x)
    bad = copy.deepcopy(params)
    bad[2]["W"] = bad[2]["W"].T
    with pytest.raises(ValueError, match=r"params\[2\]\['W'\] .* must have shape \(4, 8\), got \(8, 4\)"):
        model(bad, x)
    _, res = model.forward(params, x)
    with pytest.raises(ValueError, match=r"y_bar must have the output's shape \(3, 4\), got \(3, 3\)"):
        model.backward(res, np.ones((3, 3)))
    with pytest.raises(TypeError, match="x must be an array"):
        model(params, x.tolist())


@pytest.mark.parametrize("labels, exc, words", [
    (np.array([0, 1, 4]), ValueError, r"labels must lie in \[0, 4\) for 4 classes, got values from 0 to 4"),
    (np.array([-1, 1, 2]), ValueError, r"labels must lie in \[0, 4\)"),
    (np.array([0.0, 1.0, 2.0]), TypeError, "labels must be an integer array"),
    (np.array([0, 1]), ValueError, r"labels must have shape \(3,\)"),
])
def test_labels_checked(labels, exc, words):
    """[NN-11] every consumer of labels refuses labels out of range or of the wrong kind."""
    model = _mlp()
    params = model.init(seed=0)
    x = RNG.standard_normal((3, 6))
    logits = model(params, x)
    for call in (lambda: losses.multi_margin_fwd(logits, labels), lambda: losses.cross_entropy_fwd(logits, labels),
                 lambda: certify.margins(logits, labels), lambda: certify.certified_radius(logits, labels, 1.0),
                 lambda: certify.pgd_attack(model, params, x, labels, 0.1, steps=1)):
        with pytest.raises(exc, match=words):
            call()


# ----------------------------------------------------------------------------------------------
# Initialization [NN-12]


def test_orthogonal_init_and_seeds():
    """[NN-12] orthonormal columns (tall W) or rows (wide W), zero biases; one seed gives the
    same parameters, another seed different ones."""
    model = nn.Sequential([nn.Dense(5, 9), nn.Activation("relu"), nn.Dense(9, 3, bias=False)])
    params = model.init(seed=7)
    w0, w1 = params[0]["W"], params[2]["W"]
    np.testing.assert_allclose(w0.T @ w0, np.eye(5), atol=1e-14)
    np.testing.assert_allclose(w1 @ w1.T, np.eye(3), atol=1e-14)
    assert not np.any(params[0]["b"]) and set(params[2]) == {"W"} and params[1] == {}
    again = model.init(seed=7)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(params, again, strict=True) for k in a)
    assert not np.allclose(model.init(seed=8)[0]["W"], w0)
    normal = nn.Sequential([nn.Dense(400, 300, init="normal")]).init(seed=0)[0]["W"]
    assert abs(normal.std() * math.sqrt(400) - 1) < 0.02


def test_init_is_the_same_on_every_backend(backend, dtype):
    """[NN-12] parameters are drawn on the host: every backend gets the same numbers."""
    model = _mlp()
    ref = model.init(seed=3, dtype=dtype)
    with backend.active():
        params = model.init(seed=3, xp=backend.xp, dtype=dtype)
        for a, b in zip(ref, params, strict=True):
            for k in a:
                assert str(b[k].dtype).endswith(dtype)
                np.testing.assert_array_equal(to_numpy(b[k]), a[k])


# ----------------------------------------------------------------------------------------------
# One function, three ways; inputs untouched


@pytest.mark.parametrize("constraint, options", [("bjorck", {"n_iter": 12}), ("linf", {}), ("spectral", {}),
                                                 ("none", {})])
def test_forward_call_and_freeze_agree(constraint, options):
    model = _mlp(constraint, **options)
    params = [{k: v * 1.5 for k, v in p.items()} for p in model.init(seed=1)]
    x = RNG.standard_normal((4, 6))
    y, _ = model.forward(params, x)
    np.testing.assert_array_equal(model(params, x), y)
    frozen, fparams = model.freeze(params)
    assert all(layer.constraint == "none" for layer in frozen.layers if isinstance(layer, nn.Dense))
    np.testing.assert_allclose(frozen(fparams, x), y, rtol=1e-14, atol=1e-14)
    for w, fp in zip(model.effective_weights(params), fparams[::2], strict=True):
        np.testing.assert_array_equal(w, fp["W"])


def test_none_constraint_is_the_raw_weight():
    """W_eff = W exactly (the same array) for constraint='none'."""
    model = _mlp("none")
    params = model.init(seed=0)
    assert all(w is p["W"] for w, p in zip(model.effective_weights(params), params[::2], strict=True))


def test_inputs_are_never_modified():
    model = nn.Sequential([nn.Dense(6, 8, "bjorck", n_iter=8), nn.Activation("group_sort", group_size=4),
                           nn.Dense(8, 4, "linf"), nn.Activation("relu"), nn.Dense(4, 3, "spectral")])
    params = model.init(seed=0)
    x, labels = RNG.standard_normal((8, 6)), RNG.integers(0, 3, 8)
    saved = copy.deepcopy((params, x, labels))
    y, res = model.forward(params, x)
    y_bar = np.ones_like(y)
    model.backward(res, y_bar)
    lipschitz.upper_bound(model, params)
    lipschitz.input_gradient_norms(model, params, x, output=labels)
    certify.pgd_attack(model, params, x, labels, 0.1, steps=2)
    nn.train.fit(model, params, nn.train.minibatches(x, labels, batch_size=4), nn.optim.Adam(0.1), steps=2,
                 progress=False)
    assert np.array_equal(y_bar, np.ones_like(y))
    for a, b in zip(saved[0], params, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.array_equal(saved[1], x) and np.array_equal(saved[2], labels)


# ----------------------------------------------------------------------------------------------
# Parameter files [NN-13]


def test_save_load_round_trip(tmp_path):
    """[NN-13] the reloaded model computes the same function bit for bit; nothing is pickled."""
    model = nn.Sequential([nn.Scale(0.5), nn.Dense(4, 6, "pinf", p=math.inf, radius=2.0),
                           nn.Activation("group_sort", group_size=3), nn.Dense(6, 6, "bjorck", order=2, n_iter=9,
                                                                              bias=False),
                           nn.Activation("abs"), nn.Dense(6, 1, "unit_row"), nn.Scale(3.0)])
    params = [{k: v + 0.1 for k, v in p.items()} for p in model.init(seed=2, dtype="float32")]
    path = tmp_path / "net.npz"
    nn.save(path, params, model)
    loaded_model, loaded = nn.load_model(path)
    assert repr(loaded_model) == repr(model)
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    assert np.array_equal(loaded_model(loaded, x), model(params, x))
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype
               for a, b in zip(params, nn.load(path), strict=True) for k in a)
    nn.save(tmp_path / "bare.npz", params)
    with pytest.raises(ValueError, match="holds parameters only"):
        nn.load_model(tmp_path / "bare.npz")
    np.savez(tmp_path / "foreign.npz", W=np.ones(3))
    with pytest.raises(ValueError, match=r"foreign.npz: not a reflip.nn parameter file \(no '__model__' entry\)"):
        nn.load(tmp_path / "foreign.npz")
    with pytest.raises(ValueError, match="params has 2 entries but model has 7 layers"):
        nn.save(tmp_path / "x.npz", params[:2], model)


# ----------------------------------------------------------------------------------------------
# Reprs: the constructor call, with the arguments that apply (defaults left out)

_REPR_NAMESPACE = {"Dense": nn.Dense, "Activation": nn.Activation, "Scale": nn.Scale, "Sequential": nn.Sequential,
                   "inf": math.inf}
_REPR_LAYERS = [nn.Dense(4, 6), nn.Dense(4, 6, bias=False), nn.Dense(4, 6, "bjorck", bias=False, n_iter=9, order=2),
                nn.Dense(4, 6, "pinf", p=math.inf, radius=2.0), nn.Dense(6, 1, "unit_row"), nn.Activation("max_min"),
                nn.Activation("group_sort", group_size=3), nn.Activation("relu"), nn.Scale(0.5)]


@pytest.mark.parametrize("layer", _REPR_LAYERS, ids=repr)
def test_layer_repr_rebuilds_the_layer(layer):
    """The repr is the layer's constructor call: evaluated, it rebuilds the same layer (the
    same config, bias and options included)."""
    rebuilt = eval(repr(layer), dict(_REPR_NAMESPACE))  # noqa: S307 - our own repr
    assert type(rebuilt) is type(layer) and rebuilt.config() == layer.config()
    assert repr(rebuilt) == repr(layer)


@pytest.mark.parametrize("layer, text", [
    (nn.Dense(4, 6), "Dense(4, 6, constraint='none')"),
    (nn.Dense(4, 6, bias=False), "Dense(4, 6, constraint='none', bias=False)"),
    (nn.Dense(4, 6, "linf", bias=False, radius=2.0, threshold="detached"),
     "Dense(4, 6, constraint='linf', bias=False, radius=2.0, threshold='detached')"),
    (nn.Activation("max_min"), "Activation('max_min')"),
    (nn.Activation("group_sort", group_size=3), "Activation('group_sort', group_size=3)"),
    (nn.Scale(0.5), "Scale(0.5)"),
    (nn.Sequential([nn.Dense(2, 2), nn.Activation("relu")]),
     "Sequential([\n    Dense(2, 2, constraint='none'),\n    Activation('relu'),\n])"),
])
def test_repr_forms(layer, text):
    """group_size appears for group_sort only (the only activation that takes it), bias only
    when it is off; a Sequential lists one layer per line."""
    assert repr(layer) == text


def test_sequential_repr_rebuilds_the_model():
    model = nn.Sequential([nn.Scale(0.5), nn.Dense(4, 6, "pinf", p=math.inf), nn.Activation("group_sort", group_size=3),
                           nn.Dense(6, 2, "bjorck", n_iter=7, bias=False), nn.Activation("abs")])
    rebuilt = eval(repr(model), dict(_REPR_NAMESPACE))  # noqa: S307 - our own repr
    assert rebuilt.config() == model.config() and repr(rebuilt) == repr(model)


# ----------------------------------------------------------------------------------------------
# The layer interface: backward(residuals, y_bar, xp, input_only=False) [NN-1]


def test_layer_backward_gives_a_grads_dict_by_default_and_none_for_input_only():
    """The module's interface: ``backward`` returns ``(x_bar, param_grads dict or None)``; the
    dict by default (``input_only=False``), ``None`` with ``input_only=True``, and the same
    ``x_bar`` both ways."""
    x, y_bar = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    dense = nn.Dense(4, 4)
    for layer, params, keys in [(nn.Scale(2.0), {}, set()), (nn.Activation("relu"), {}, set()),
                                (nn.Activation("max_min"), {}, set()),
                                (dense, dense.init(np.random.default_rng(0), np, np.float64), {"W", "b"})]:
        _, res = layer.forward(params, x, np)
        x_bar, grads = layer.backward(res, y_bar, np)
        assert isinstance(grads, dict) and set(grads) == keys, layer
        x_bar_only, none = layer.backward(res, y_bar, np, True)
        assert none is None, layer
        np.testing.assert_array_equal(x_bar_only, x_bar)
    assert np.array_equal(nn.Scale(2.0).backward(None, y_bar, np)[0], 2.0 * y_bar)  # exact: times 2


# ----------------------------------------------------------------------------------------------
# freeze / effective_weights with unit_row and bias-free layers


def test_freeze_keeps_bias_free_layers_and_unit_rows():
    """The frozen model has the same layers with constraint='none' (bias kept, off where it was
    off) and computes the same function; unit_row's W_eff is the unit vector along W [NN-5]."""
    model = nn.Sequential([nn.Dense(4, 6, "bjorck", bias=False, n_iter=15), nn.Activation("relu"),
                           nn.Dense(6, 1, "unit_row")])
    params = [{k: v + 0.25 for k, v in p.items()} for p in model.init(seed=4)]
    frozen, fparams = model.freeze(params)
    assert [layer.config() for layer in frozen.layers] == [
        nn.Dense(4, 6, bias=False).config(), nn.Activation("relu").config(), nn.Dense(6, 1).config()]
    assert set(fparams[0]) == {"W"} and set(fparams[2]) == {"W", "b"}
    x = RNG.standard_normal((5, 4))
    np.testing.assert_allclose(frozen(fparams, x), model(params, x), rtol=1e-14, atol=1e-14)
    w_effs = model.effective_weights(params)
    assert len(w_effs) == 2
    for w_eff, fp in zip(w_effs, fparams[::2], strict=True):
        np.testing.assert_array_equal(w_eff, fp["W"])
    row, w = w_effs[1], params[2]["W"]
    assert row.shape == (1, 6)
    np.testing.assert_allclose(np.linalg.norm(row), 1.0, rtol=1e-15)
    np.testing.assert_allclose((row @ w.T).item(), np.linalg.norm(w), rtol=1e-15)  # along W: <u, W> = ||W||


# ----------------------------------------------------------------------------------------------
# Messages in full: the parameter named as itself, what it got, what was expected [NN-11]

_ANY_XP = types.SimpleNamespace(asarray=np.asarray, zeros=np.zeros, float32=np.float32, float64=np.float64)
_TINY = nn.Sequential([nn.Dense(3, 2)])
_TINY_PARAMS = _TINY.init(seed=0)
_DTYPE_ADVICE = (" (float16 and longdouble are refused: the tolerances and rounding bounds are derived for float32 "
                 "and float64; convert with astype)")


@pytest.mark.parametrize("call, exc, text", [
    (lambda: nn.Dense(0, 3), ValueError, "in_features must be >= 1, got 0"),
    (lambda: nn.Dense(3, 0), ValueError, "out_features must be >= 1, got 0"),
    (lambda: nn.Dense(3, 3, "x"), ValueError,
     "constraint must be one of ('bjorck', 'polar', 'linf', 'pinf', 'spectral', 'unit_row', 'none'), got 'x'"),
    (lambda: nn.Dense(3, 3, bias=1), TypeError, "bias must be True or False, got 1 (int)"),
    (lambda: nn.Dense(3, 3, init="x"), ValueError, "init must be one of ('orthogonal', 'normal'), got 'x'"),
    (lambda: nn.Dense(3, 3, "bjorck", n_iter=10**30), ValueError, f"n_iter must be <= 10000, got {10**30}"),
    (lambda: nn.Dense(10**30, 1), ValueError, f"in_features must be <= 2147483648, got {10**30}"),
    (lambda: nn.Dense(1, 10**30), ValueError, f"out_features must be <= 2147483648, got {10**30}"),
    (lambda: nn.Dense(2**16, 2**16), ValueError, "in_features * out_features must be <= 2147483648 (MAX_PARAMETERS, "
                                                 "the entries of one weight), got 65536 * 65536 = 4294967296"),
    (lambda: nn.Dense(3, 3, "pinf"), TypeError,
     "Dense(constraint='pinf') needs the option p (1, 2 or math.inf): the input norm of the network, rows of "
     "W_eff go to the dual-norm ball [PR-7]"),
    (lambda: nn.Dense(3, 3, "spectral", u=np.ones(3)), TypeError,
     "Dense(constraint='spectral') got unexpected option(s) ['u']; its options are ['n_iter', 'tol', 'convention']"),
    (lambda: nn.Sequential([]), ValueError, "layers must hold at least one layer"),
    (lambda: nn.Sequential([nn.Scale(1.0)]), ValueError,
     "layers must include a Dense layer (it fixes the input width)"),
    (lambda: nn.Sequential("ab"), TypeError, "layers must be a list or tuple of reflip.nn layers, got str"),
    (lambda: _TINY.init(dtype="int32"), TypeError,
     "dtype must be float32 or float64 (a dtype of numpy or its name), got 'int32'"),
    (lambda: _TINY.init(dtype="int32", xp=_ANY_XP), TypeError,
     f"dtype must be float32 or float64 (a dtype of {_ANY_XP} or its name), got 'int32'"),
    (lambda: _TINY(_TINY_PARAMS, np.ones((2, 3), np.int64)), TypeError,
     "x must have dtype float32 or float64, got int64" + _DTYPE_ADVICE),
    (lambda: _TINY.backward(_TINY.forward(_TINY_PARAMS, np.ones((2, 3)))[1], np.ones((2, 2), np.int64)), TypeError,
     "y_bar must have dtype float32 or float64, got int64" + _DTYPE_ADVICE),
    (lambda: _TINY.backward(((),), np.ones((2, 2))), TypeError,
     "residuals must be the SequentialResiduals of this model's forward, got tuple"),
    (lambda: _TINY([[]], np.ones((2, 3))), ValueError,
     "params[0] (Dense(3, 2, constraint='none')) must be a dict with keys ['W', 'b'], got list"),
    (lambda: _TINY([{"W": _TINY_PARAMS[0]["W"], 1: _TINY_PARAMS[0]["b"]}], np.ones((2, 3))), ValueError,
     "params[0] (Dense(3, 2, constraint='none')) must be a dict with keys ['W', 'b'], got [1, 'W']"),
    (lambda: _TINY([{"W": _TINY_PARAMS[0]["W"], "b": _TINY_PARAMS[0]["b"].astype(np.float32)}],
                   np.ones((2, 3), np.float32)), TypeError,
     "x has dtype float32 but the parameters have dtype float64; convert one of them (the model never mixes "
     "precisions)"),
    (lambda: nn.Sequential([nn.Dense(3, 1, "unit_row")])([{"W": np.zeros((1, 3)), "b": np.zeros(1)}], np.ones((2, 3))),
     ValueError, "constraint='unit_row': the weight row is zero, it has no direction"),
    (lambda: nn.Activation("group_sort"), TypeError,
     "Activation('group_sort') needs group_size (the size k of the sorted groups)"),
])
def test_messages_in_full(call, exc, text):
    with pytest.raises(exc, match="^" + re.escape(text) + "$") as info:
        call()
    assert type(info.value) is exc


def test_one_array_library_message_names_the_libraries():
    xps = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError, match="^" + re.escape("x and params must be arrays of one array library, got arrays "
                                                        "of ['array_api_strict._array_object', 'numpy']") + "$"):
        _TINY(_TINY_PARAMS, xps.asarray(np.ones((2, 3))))


@pytest.mark.parametrize("constraint", ["bjorck", "polar"])
def test_iterative_constraints_default_to_ignoring_nonconvergence(constraint):
    """Dense's documented default for Björck and polar: ``on_nonconvergence="ignore"``,
    recorded in the options (repr, config) and overridable."""
    assert nn.Dense(3, 3, constraint).options == {"on_nonconvergence": "ignore"}
    assert nn.Dense(3, 3, constraint).config()["on_nonconvergence"] == "ignore"
    assert nn.Dense(3, 3, constraint, on_nonconvergence="warn").options == {"on_nonconvergence": "warn"}
    assert nn.Dense(3, 3, "spectral").options == {}


def test_init_seed_defaults_to_zero():
    """``init(seed=0, xp=numpy, dtype="float64")``: the signature's defaults."""
    model = _mlp("none")
    default, zero = model.init(), model.init(seed=0, xp=np, dtype="float64")
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == np.float64 for a, b in zip(default, zero, strict=True)
               for k in a)


def test_unit_row_of_a_short_row():
    """``"unit_row"``: ``W / ||W||_2`` for any nonzero row, shorter than 1 too [NN-5]."""
    layer = nn.Dense(3, 1, "unit_row")
    np.testing.assert_allclose(layer.effective_weight({"W": np.array([[0.3, 0.4, 0.0]])}, np), [[0.6, 0.8, 0.0]],
                               rtol=1e-15)
    y, _ = layer.forward({"W": np.array([[0.0, 0.0, 1e-3]]), "b": np.zeros(1)}, np.array([[1.0, 2.0, 3.0]]), np)
    np.testing.assert_allclose(y, [[3.0]], rtol=1e-15)


def test_precision_is_checked_by_the_first_forward_pass():
    """Dense's probe leaves ``precision`` out: it depends on the weights' backend and dtype, so a
    GPU-only precision builds the layer and is refused by the first NumPy forward pass."""
    layer = nn.Dense(3, 3, "bjorck", precision="tf32-mixed")
    assert layer.options["precision"] == "tf32-mixed"
    with pytest.raises(ValueError, match=r"^precision='tf32-mixed' needs a float32 CuPy array"):
        layer.forward({"W": np.eye(3), "b": np.zeros(3)}, np.ones((2, 3)), np)


def test_nan_rows_keep_the_cotangent_dtype():
    """[NN-14] the NaN rows of x_bar are NaN of the model's dtype: a float32 model gives a
    float32 x_bar, finite on the other rows."""
    model = nn.Sequential([nn.Dense(3, 4), nn.Activation("max_min"), nn.Dense(4, 2)])
    params = model.init(seed=0, dtype="float32")
    x = RNG.standard_normal((3, 3)).astype(np.float32)
    x[1, 0] = np.nan
    y, res = model.forward(params, x)
    x_bar, grads = model.backward(res, np.ones_like(y))
    assert x_bar.dtype == np.float32 and all(g.dtype == np.float32 for p in grads for g in p.values())
    assert np.all(np.isnan(x_bar[1])) and np.all(np.isfinite(x_bar[[0, 2]]))


def test_integer_and_exponent_options_are_stored_as_python_numbers(tmp_path):
    """``n_iter`` and ``p`` are checked and stored as Python ``int``/``float`` (``check_int``,
    ``check_p``), so that NumPy scalars give the same config, JSON and all, and the model saves
    and loads [NN-13]."""
    model = nn.Sequential([nn.Dense(4, 6, "pinf", p=np.int64(2)), nn.Activation("max_min"),
                           nn.Dense(6, 3, "bjorck", n_iter=np.int64(9))])
    first, last = model.layers[0].options, model.layers[2].options
    assert type(first["p"]) is float and first["p"] == 2.0
    assert type(last["n_iter"]) is int and last["n_iter"] == 9
    assert model.config() == nn.Sequential([nn.Dense(4, 6, "pinf", p=2.0), nn.Activation("max_min"),
                                            nn.Dense(6, 3, "bjorck", n_iter=9)]).config()
    params = model.init(seed=0)
    nn.save(tmp_path / "net.npz", params, model)
    assert nn.load_model(tmp_path / "net.npz")[0].config() == model.config()


def test_numpy_scalar_options_are_stored_as_python_numbers(tmp_path):
    """A real or boolean option given as a NumPy scalar (``radius=np.float32(2.0)``) is stored
    as the Python number it equals: the config is JSON, so the model saves and loads [NN-13],
    and the repr is the constructor call with plain numbers."""
    layer = nn.Dense(4, 6, "linf", radius=np.float32(2.0))
    assert type(layer.options["radius"]) is float and layer.options["radius"] == 2.0
    assert "np." not in repr(layer)
    bj = nn.Dense(6, 3, "bjorck", tol=np.float64(1e-3), check_finite=np.bool_(True))
    assert type(bj.options["tol"]) is float and type(bj.options["check_finite"]) is bool
    model = nn.Sequential([layer, nn.Activation("max_min"), bj])
    nn.save(tmp_path / "net.npz", model.init(seed=0), model)
    assert nn.load_model(tmp_path / "net.npz")[0].config() == model.config()


@pytest.mark.parametrize("constraint, other", [("bjorck", {"order": 10**30}), ("polar", {"degree": 10**30})])
def test_n_iter_is_bounded_before_the_other_options(constraint, other):
    """Dense bounds ``n_iter`` by MAX_ITERATIONS "before anything runs": the bound is the error
    reported even when another option is wrong too."""
    with pytest.raises(ValueError, match="^" + re.escape(f"n_iter must be <= 10000, got {10**30}") + "$"):
        nn.Dense(3, 3, constraint, n_iter=10**30, **other)


@pytest.mark.parametrize("layer", [nn.Activation("group_sort", group_size=3), nn.Activation("max_min"),
                                   nn.Activation("full_sort"), nn.Activation("relu"), nn.Scale(2.0)])
def test_output_width_of_an_unknown_width_is_unknown(layer):
    """``Layer.output_width``: ``None`` (a width not known yet) gives ``None``, no divisibility check."""
    assert layer.output_width(None, 0) is None
    assert layer.output_width(6, 0) == 6


def test_construction_probe_silences_only_the_convergence_warning(monkeypatch):
    """Dense's option probe ignores Björck's convergence warning only (whether a 2 x 2 probe
    converges says nothing of the real weights); any other warning reaches the caller."""
    from reflip.bjorck import BjorckConvergenceWarning
    from reflip.nn import layers as layers_module

    real = layers_module._constraint_fwd

    def warning_probe(*args):
        warnings.warn("from the probe", UserWarning, stacklevel=2)
        warnings.warn("not converged", BjorckConvergenceWarning, stacklevel=2)
        return real(*args)

    monkeypatch.setattr(layers_module, "_constraint_fwd", warning_probe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nn.Dense(3, 3, "spectral")
    assert [(w.category, str(w.message)) for w in caught] == [(UserWarning, "from the probe")]


def test_check_params_messages_in_full():
    """``Sequential.check_params``: one library, floating dtypes, one dtype, each refused with a
    ``TypeError`` naming ``params``; ``check_model`` names ``model`` by default."""
    from reflip.nn.model import check_model

    w, b = _TINY_PARAMS[0]["W"], _TINY_PARAMS[0]["b"]
    cases = [([{"W": w.astype(np.int64), "b": b.astype(np.int64)}],
              "params must have dtype float32 or float64, got int64" + _DTYPE_ADVICE),
             ([{"W": w.astype(np.float32), "b": b}],
              "params mix dtypes float32 and float64; the model never mixes precisions")]
    xps = pytest.importorskip("array_api_strict")
    cases.append(([{"W": w, "b": xps.asarray(b)}], "params must be arrays of one array library, got arrays of "
                                                   "['array_api_strict._array_object', 'numpy']"))
    cases.append(({"W": w, "b": b}, "params must be a list of 1 dicts (one per layer), got dict"))
    for params, text in cases:
        with pytest.raises(TypeError, match="^" + re.escape(text) + "$"):
            _TINY.check_params(params)
    with pytest.raises(TypeError, match="^" + re.escape("model must be a reflip.nn.Sequential, got int") + "$"):
        check_model(3)
    with pytest.raises(TypeError, match="^" + re.escape("layers[1] must be a reflip.nn layer (Dense, Activation, "
                                                        "Scale), got str") + "$"):
        nn.Sequential([nn.Dense(3, 3), "relu"])


def test_every_parameter_has_the_dtype_of_x():
    """Every parameter array, the first one included, must have the dtype of ``x``."""
    params = [{"W": _TINY_PARAMS[0]["W"], "b": _TINY_PARAMS[0]["b"].astype(np.float32)}]
    with pytest.raises(TypeError, match=r"^x has dtype float32 but the parameters have dtype float64; "):
        _TINY(params, np.ones((2, 3), np.float32))


def test_widths_are_checked_before_the_first_dense_layer():
    """[NN-11] the first Dense layer fixes the input width for the layers before it too: a pair
    activation ahead of ``Dense(3, 2)`` meets an odd width."""
    with pytest.raises(ValueError, match=r"^layer 0: Activation\('max_min'\) needs a width divisible by its group "
                                         r"size 2, got width 3$"):
        nn.Sequential([nn.Activation("max_min"), nn.Dense(3, 2)])
    assert nn.Sequential([nn.Activation("max_min"), nn.Dense(4, 2)]).out_features == 2


def test_input_only_backward_skips_the_constraint_vjps(monkeypatch):
    """[NN-1] ``backward(..., input_only=True)`` skips the weight and constraint VJPs."""
    from reflip.nn import layers as layers_module

    model = _mlp("spectral")
    params = model.init(seed=0)
    y, res = model.forward(params, RNG.standard_normal((2, 6)))
    expected, _ = model.backward(res, np.ones_like(y))

    def no_weight_vjp(*args):
        raise AssertionError("a constraint VJP ran for input_only=True")

    monkeypatch.setattr(layers_module, "_constraint_bwd", no_weight_vjp)
    x_bar, grads = model.backward(res, np.ones_like(y), input_only=True)
    assert grads is None and np.array_equal(x_bar, expected)
