"""The JAX adapter on a small JAX port. JAX is not a test dependency: this runs where JAX is
installed (`pip install jax`) and is skipped elsewhere, CI included."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from reflip.adapters import JaxAdapter  # noqa: E402
from reflip.audit import check_implementation  # noqa: E402


def group_sort(x, k, axis=-1):
    x = jnp.moveaxis(x, axis, -1)
    y = jnp.sort(x.reshape(*x.shape[:-1], -1, k), axis=-1, stable=True)
    return jnp.moveaxis(y.reshape(x.shape), -1, axis)


@pytest.fixture(scope="module", autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def test_jax_port_passes_every_check():
    """[GS-1] [GS-4] [GS-5] [GS-7] a stable-sort JAX GroupSort passes everything, JVP included."""
    report = check_implementation(JaxAdapter(name="jax port", group_sort=group_sort), primitives=["group_sort"])
    assert report.ok, report.to_markdown()
    assert {r.status for r in report.results} == {"pass"}


def test_jax_descending_port_fails():
    def descending(x, k, axis=-1):
        return -group_sort(-x, k, axis)

    report = check_implementation(JaxAdapter(group_sort=descending), primitives=["group_sort"], dtypes=["float64"])
    assert not report.ok and "DESCENDING" in report.to_markdown()


def test_dtype_preserved():
    adapter = JaxAdapter(group_sort=group_sort)
    assert adapter.group_sort(np.arange(4, dtype=np.float32), 2).dtype == np.float32
