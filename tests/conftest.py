"""Suite-wide configuration: hypothesis profiles and the (backend, dtype) parametrization.

Profiles: ``ci`` (derandomized, used when the CI variable is set), ``default`` (local runs),
``thorough`` (``pytest --thorough``: 10x the examples) and ``mutation`` (``ci`` without shrinking,
used when REFLIP_MUTATION is set: tools/mutation.py).
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

from reflip.audit.engine import PROFILES
from reflip.testing.backends import DTYPES, available_backends

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=PROFILES["ci"], derandomize=True, database=None, **_COMMON)
settings.register_profile("default", max_examples=PROFILES["default"], **_COMMON)
settings.register_profile("thorough", max_examples=PROFILES["thorough"], **_COMMON)
# A mutant only needs a failing example, not a small one: shrinking it can outlast mutmut's time
# limit, which then reports a caught mutant as timed out.
settings.register_profile("mutation", parent=settings.get_profile("ci"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])

BACKENDS = available_backends()


def pytest_addoption(parser):
    parser.addoption("--thorough", action="store_true", help="run hypothesis with the thorough profile")


def pytest_configure(config):
    if config.getoption("--thorough"):
        settings.load_profile("thorough")
    elif os.environ.get("REFLIP_MUTATION"):
        settings.load_profile("mutation")
    elif os.environ.get("CI"):
        settings.load_profile("ci")
    else:
        settings.load_profile("default")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", DTYPES)


def pytest_report_header(config):
    return f"reflip backends: {', '.join(b.name for b in BACKENDS)}; hypothesis profile: {settings._current_profile}"


@pytest.fixture
def fused_calls(monkeypatch):
    """Every NumPy matrix takes the fused products [BJ-11] (``MIN_N`` lowered to 1); the dict
    counts their calls (``gram``, ``step``, ``step_vjp``) for Björck and polar tests."""
    from reflip._fast import numpy_bjorck as nb

    monkeypatch.setattr(nb, "MIN_N", 1)
    calls = {"gram": 0, "step": 0, "step_vjp": 0}
    for name in calls:
        original = getattr(nb.BjorckSteps, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(nb.BjorckSteps, name, spy)
    return calls
