"""Every test under tests/meta is a meta-test: it runs the suite against deliberately broken
implementations (the mutants) and takes about half the suite's time. Marking them here, rather
than by a ``pytestmark`` line per file, keeps a new file in this folder out of the quick loop
``python -m pytest -m "not meta"`` (docs/development.md) without anyone remembering to mark it.
"""
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # pytest calls this hook of a folder's conftest with every collected item, not only the
    # folder's: select ours by path.
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.meta)
