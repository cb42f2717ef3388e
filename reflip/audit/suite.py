"""The suite as pytest tests, collected by the reflip pytest plugin when ``--reflip-impl`` (or
``REFLIP_IMPL``) names an implementation. Each check is one test id, e.g.
``test_check[group_sort.lipschitz[numpy-float32]]``."""
from __future__ import annotations

from reflip.audit.adapter import load_impl
from reflip.audit.api import iter_checks, read_xfails


def _checks(config):
    spec = config.getoption("--reflip-impl")
    if not spec:
        return []
    adapter = None if spec == "reflip" else load_impl(spec)
    path = config.getoption("--reflip-xfails")
    return list(iter_checks(adapter, xfails=read_xfails(path) if path else None))


def pytest_generate_tests(metafunc):
    if "reflip_check" in metafunc.fixturenames:
        checks = _checks(metafunc.config)
        metafunc.parametrize("reflip_check", checks, ids=[c.id for c in checks])


def test_check(reflip_check, request):
    """One claim of proofs/ on the implementation under audit."""
    reflip_check(request.config.getoption("--reflip-profile"))
