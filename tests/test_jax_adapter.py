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


# Every check reaches the port through the same three adapter methods (forward, jax.vjp,
# jax.jvp), which these exercise; test_dtype_preserved covers float32. The full GroupSort
# audit of a port runs in tests/test_torch_adapter.py (JAX compiles its operations anew for
# every shape drawn, which makes a full audit slow here).
CHECKS = ["group_sort.fd", "group_sort.adjoint", "group_sort.matches_reflip"]


def test_jax_port_passes():
    """[GS-1] [GS-4] a stable-sort JAX GroupSort passes: forward, VJP and JVP equal reflip's
    and agree with central differences."""
    report = check_implementation(JaxAdapter(name="jax port", group_sort=group_sort), primitives=["group_sort"],
                                  dtypes=["float64"], checks=CHECKS)
    assert report.ok, report.to_markdown()
    assert {r.status for r in report.results} == {"pass"} and len(report.results) == len(CHECKS)


def test_jax_descending_port_fails():
    def descending(x, k, axis=-1):
        return -group_sort(-x, k, axis)

    report = check_implementation(JaxAdapter(group_sort=descending), primitives=["group_sort"], dtypes=["float64"],
                                  checks=["group_sort.matches_reflip"], shrink=False)
    assert not report.ok and "DESCENDING" in report.to_markdown()


def test_dtype_preserved():
    adapter = JaxAdapter(group_sort=group_sort)
    assert adapter.group_sort(np.arange(4, dtype=np.float32), 2).dtype == np.float32
