"""NumPy and CuPy give the same outputs, gradients, losses, training steps, bounds, certificates
and attacks for the same network [NN-2] [NN-3] [NN-9] [CT-3]. Skipped without CuPy and a GPU.

On a GPU machine: ``python -m pytest -q tests/nn/test_gpu_parity.py`` (the other nn tests pick
up the ``cupy`` backend through the ``backend`` fixture as well)."""
import math

import numpy as np
import pytest

from reflip import nn, to_numpy
from reflip.nn import certify, lipschitz, losses, optim, train
from reflip.testing.backends import available_backends

CUPY = available_backends(("cupy",))
pytestmark = pytest.mark.skipif(not CUPY, reason="needs CuPy and a GPU")

D, A = nn.Dense, nn.Activation
NETWORKS = {
    "bjorck-maxmin": lambda: [D(8, 16, "bjorck", n_iter=20), A("max_min"), D(16, 16, "bjorck", n_iter=20, order=2),
                              A("group_sort", group_size=4), D(16, 4, "bjorck", n_iter=20, backward="implicit"),
                              nn.Scale(2.0)],
    "linf": lambda: [D(8, 12, "pinf", p=math.inf), A("group_sort", group_size=3), D(12, 12, "linf"), A("full_sort"),
                     D(12, 4, "linf", threshold="detached")],
    "mixed": lambda: [D(8, 8, "pinf", p=2), A("relu"), D(8, 8, "spectral"), A("abs"),
                      D(8, 8, "bjorck", checkpoint=True, n_iter=15), A("max_min"), D(8, 1, "unit_row")],
}
# Relative tolerance per dtype: cuBLAS and OpenBLAS sum in different orders.
RTOL = {"float64": 1e-10, "float32": 2e-4}


def _setup(name, dtype):
    model = nn.Sequential(NETWORKS[name]())
    rng = np.random.default_rng(0)
    params = [{k: (1.2 * v + 0.1 * rng.standard_normal(v.shape)).astype(dtype) for k, v in p.items()}
              for p in model.init(seed=0)]
    x = rng.standard_normal((32, model.in_features)).astype(dtype)
    y_bar = rng.standard_normal((32, model.out_features)).astype(dtype)
    return model, params, x, y_bar


def _to_gpu(tree):
    gpu = CUPY[0]
    return [{k: gpu.asarray(v) for k, v in p.items()} for p in tree]


def _close(gpu, ref, dtype):
    ref = np.asarray(ref)
    np.testing.assert_allclose(to_numpy(gpu), ref, rtol=RTOL[dtype], atol=RTOL[dtype] * max(np.abs(ref).max(), 1e-30))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_forward_backward_parity(name, dtype):
    """[NN-2] outputs, input gradients and parameter gradients agree between NumPy and CuPy."""
    model, params, x, y_bar = _setup(name, dtype)
    y, res = model.forward(params, x)
    x_bar, grads = model.backward(res, y_bar)
    gpu = CUPY[0]
    gy, gres = model.forward(_to_gpu(params), gpu.asarray(x))
    gx_bar, ggrads = model.backward(gres, gpu.asarray(y_bar))
    assert type(gy).__module__.startswith("cupy")
    _close(gy, y, dtype)
    _close(gx_bar, x_bar, dtype)
    for g, r in zip(ggrads, grads, strict=True):
        for k in r:
            _close(g[k], r[k], dtype)
    _close(model(_to_gpu(params), gpu.asarray(x)), y, dtype)


def test_losses_parity():
    """[NN-7] values and gradients of the three losses."""
    gpu = CUPY[0]
    rng = np.random.default_rng(1)
    logits, labels = rng.standard_normal((64, 10)), rng.integers(0, 10, 64)
    for fwd, bwd, kw in [(losses.multi_margin_fwd, losses.multi_margin_bwd, {"margin": 0.3}),
                         (losses.cross_entropy_fwd, losses.cross_entropy_bwd, {})]:
        v, r = fwd(logits, labels, **kw)
        gv, gr = fwd(gpu.asarray(logits), gpu.asarray(labels), **kw)
        assert float(gv) == pytest.approx(float(v), rel=1e-12)
        _close(bwd(gr, 1.0), bwd(r, 1.0), "float64")
    v, r = losses.kr_dual_fwd(logits[:, 0], logits[:, 1])
    gv, gr = losses.kr_dual_fwd(gpu.asarray(logits[:, 0]), gpu.asarray(logits[:, 1]))
    assert float(gv) == pytest.approx(float(v), rel=1e-12)


@pytest.mark.parametrize("opt", [lambda: optim.Adam(0.01), lambda: optim.AggMo(0.01), lambda: optim.SGD(0.05, 0.9)])
def test_training_parity(opt):
    """[NN-9] ten seeded training steps with clipping give the same parameters and losses."""
    model, params, x, _ = _setup("bjorck-maxmin", "float64")
    labels = np.random.default_rng(2).integers(0, 4, 32)
    kw = dict(loss="multi_margin", loss_options={"margin": 0.3}, steps=10, seed=3, clip_norm=1.0, progress=False)
    ref, ref_h = train.fit(model, params, train.minibatches(x, labels, batch_size=8), opt(), **kw)
    gpu = CUPY[0]
    got, h = train.fit(model, _to_gpu(params), train.minibatches(gpu.asarray(x), gpu.asarray(labels), batch_size=8),
                       opt(), **kw)
    np.testing.assert_allclose(h.loss, ref_h.loss, rtol=1e-9)
    for g, r in zip(got, ref, strict=True):
        for k in r:
            _close(g[k], r[k], "float64")


def test_bounds_certificates_attack_parity():
    """[NN-3] [NN-4] [CT-3] upper bound, gradient norms, certified radii and an l2 attack."""
    model, params, x, _ = _setup("bjorck-maxmin", "float64")
    labels = np.argmax(model(params, x), axis=1)
    gpu = CUPY[0]
    gp, gx, gl = _to_gpu(params), gpu.asarray(x), gpu.asarray(labels)
    for p in (2, math.inf):
        assert lipschitz.upper_bound(model, gp, p) == pytest.approx(lipschitz.upper_bound(model, params, p), rel=1e-10)
    _close(lipschitz.input_gradient_norms(model, gp, gx, output=gl),
           lipschitz.input_gradient_norms(model, params, x, output=labels), "float64")
    L = lipschitz.upper_bound(model, params)
    _close(certify.certified_radius(model(gp, gx), gl, L), certify.certified_radius(model(params, x), labels, L),
           "float64")
    ref = certify.pgd_attack(model, params, x, labels, 0.2, steps=10)
    _close(certify.pgd_attack(model, gp, gx, gl, 0.2, steps=10), ref, "float64")
    report = certify.check_certificates(model, gp, gx, gl, 0.05, L, steps=10)
    assert report["broken_certified"].size == 0


def test_save_cupy_load_numpy(tmp_path):
    """[NN-13] CuPy parameters saved and reloaded on the host are the same numbers."""
    model, params, _, _ = _setup("linf", "float32")
    nn.save(tmp_path / "p.npz", _to_gpu(params), model)
    _, loaded = nn.load_model(tmp_path / "p.npz")
    for a, b in zip(loaded, params, strict=True):
        for k in b:
            np.testing.assert_array_equal(a[k], b[k])
