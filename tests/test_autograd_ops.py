"""The autograd bridge: every registry primitive differentiates with autograd.grad, and
autograd's own checker passes in the modes and orders the registry claims."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, make_jvp
from autograd.test_util import check_grads

import reflip
from reflip import autograd_ops
from reflip._registry import REGISTRY


def test_every_primitive_is_bridged():
    assert set(REGISTRY) <= set(autograd_ops.OPS)
    for name in REGISTRY:
        assert getattr(autograd_ops, name) is autograd_ops.OPS[name]


@pytest.mark.parametrize("k", [2, 3, 4, 12])
def test_group_sort_check_grads(k):
    """[GS-4] [GS-11] forward and reverse mode, to third order, at a tie-free point."""
    x = np.random.default_rng(k).permutation(24).reshape(2, 12) / 4.0
    check_grads(lambda z: autograd_ops.group_sort(z, group_size=k), modes=["fwd", "rev"], order=3)(x)


def test_grad_equals_hand_written_vjp():
    x = np.random.default_rng(1).standard_normal((3, 6))
    w = np.random.default_rng(2).standard_normal((3, 6))
    g = grad(lambda z: anp.sum(autograd_ops.group_sort(z, group_size=3, axis=-1) * w))(x)
    _, res = reflip.group_sort_fwd(x, 3)
    np.testing.assert_array_equal(g, reflip.group_sort_bwd(res, w))
    _, jvp = make_jvp(lambda z: autograd_ops.max_min(z))(x)(w)
    _, res2 = reflip.group_sort_fwd(x, 2)
    np.testing.assert_array_equal(jvp, reflip.group_sort_jvp(res2, w))


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
def test_hessian_is_zero_almost_everywhere():
    """[GS-11] second derivatives vanish off the ties (the permutation is locally constant)."""
    x = np.random.default_rng(3).standard_normal((8,))
    f = lambda z: anp.sum(autograd_ops.full_sort(z) * anp.arange(8.0) ** 2)  # noqa: E731
    h = grad(lambda z: anp.sum(grad(f)(z) * anp.ones(8)))(x)
    np.testing.assert_array_equal(h, np.zeros(8))


def test_second_order_refused_where_not_supported():
    """A primitive registered with second_order=False refuses a second derivative clearly."""
    import dataclasses

    rec = dataclasses.replace(REGISTRY["group_sort"], name="gs_first_order_only", second_order=False)
    op = autograd_ops.bridge(rec)
    x = np.arange(6.0)
    f = lambda z: anp.sum(op(z, group_size=3) ** 2)  # noqa: E731
    grad(f)(x)
    with pytest.raises(NotImplementedError, match="second-order derivatives are not available"):
        grad(lambda z: anp.sum(grad(f)(z)))(x)
