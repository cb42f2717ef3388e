"""pytest plugin (registered through the ``pytest11`` entry point): run reflip's suite on an
implementation, one test id per check::

    python -m pytest --reflip-impl mypackage.adapters:MyAdapter
    REFLIP_IMPL=mypackage.adapters:MyAdapter python -m pytest

Options: ``--reflip-profile quick|thorough``, ``--reflip-xfails FILE``. Without an
implementation the plugin does nothing. ``--reflip-impl reflip`` audits reflip itself.
"""
from __future__ import annotations

import os
from pathlib import Path

SUITE = Path(__file__).with_name("suite.py")


def pytest_addoption(parser):
    group = parser.getgroup("reflip", "reflip audit of an implementation")
    group.addoption("--reflip-impl", default=os.environ.get("REFLIP_IMPL"),
                    help="'package.module:adapter' to audit ('reflip' for reflip itself); env REFLIP_IMPL")
    group.addoption("--reflip-profile", default=os.environ.get("REFLIP_PROFILE", "quick"),
                    choices=["quick", "thorough"], help="hypothesis budget per check")
    group.addoption("--reflip-xfails", default=os.environ.get("REFLIP_XFAILS"),
                    help="expected-failures file (one check id per line, reason in # lines above)")


def pytest_configure(config):
    # Collect the suite module when an implementation is named: it holds one parametrized
    # test whose ids are the checks.
    if config.getoption("--reflip-impl") and str(SUITE) not in config.args:
        config.args.append(str(SUITE))
