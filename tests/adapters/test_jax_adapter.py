"""The JAX adapter on the JAX port of tests/ports/jax_ports.py (``reflip audit --impl
jax-port``). JAX (CPU) is in the test extra, so this runs in CI; it is skipped only where JAX is
absent.

JAX compiles each function anew for every shape drawn, so the selection is small (float64: the
forward against reflip and central differences for GroupSort, central differences for Björck
and the l_inf projection; every derivative check reaches the port through the same adapter
methods: forward, ``jax.vjp``, ``jax.jvp``). The full audit is docs/audits/jax-port-*.md.
"""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from reflip.adapters import JaxAdapter  # noqa: E402
from reflip.audit import check_implementation  # noqa: E402
from tests.ports import jax_ports  # noqa: E402

CHECKS = {"group_sort": ["group_sort.matches_reflip", "group_sort.fd"], "bjorck": ["bjorck.fd"],
          "linf_project": ["linf_project.fd"]}


@pytest.fixture(scope="module", autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("primitive", sorted(CHECKS))
def test_jax_port_passes(primitive):
    """[GS-1] [GS-4] [BJ-8] [PR-1] the port's forward equals reflip's and JAX's VJP and JVP
    agree with central differences (float64; test_dtype_preserved covers float32)."""
    report = check_implementation(jax_ports.jax_port(), primitives=[primitive], checks=CHECKS[primitive],
                                  dtypes=["float64"])
    assert report.ok, report.to_markdown()
    assert {r.status for r in report.results} == {"pass"} and len(report.results) == len(CHECKS[primitive])


def test_jax_descending_port_fails():
    def descending(x, k, axis=-1):
        return -jax_ports.group_sort(-x, k, axis)

    jax_ports.jax_port()  # float64 mode
    report = check_implementation(JaxAdapter(group_sort=descending), primitives=["group_sort"], dtypes=["float64"],
                                  checks=["group_sort.matches_reflip"], shrink=False)
    assert not report.ok and "DESCENDING" in report.to_markdown()


def test_jax_detached_bjorck_fails():
    """A planted port bug: every cubic term detached (``stop_gradient``), the memory saving of
    some ports. JAX's own VJP of it then disagrees with central differences [BJ-8]."""

    def detached(w, beta=0.5, n_iter=20, scaling="frobenius"):
        squares = jnp.sum(w * w, axis=(-2, -1), keepdims=True)
        a = w / jnp.sqrt(jnp.where(squares > 0, squares, 1.0)) if scaling == "frobenius" else w
        for _ in range(n_iter):
            a = (1 + beta) * a - beta * jax.lax.stop_gradient(a @ (jnp.swapaxes(a, -1, -2) @ a))
        return a

    jax_ports.jax_port()
    report = check_implementation(JaxAdapter(bjorck=detached, conventions={"bjorck.params": {"order": 1}}),
                                  primitives=["bjorck"], dtypes=["float64"], checks=["bjorck.fd"], shrink=False)
    assert not report.ok and "central differences" in report.to_markdown(), report.to_markdown()


def test_dtype_preserved():
    adapter = jax_ports.jax_port()
    assert adapter.group_sort(np.arange(4, dtype=np.float32), 2).dtype == np.float32
    assert adapter.bjorck(np.eye(2, dtype=np.float32), n_iter=2).dtype == np.float32
