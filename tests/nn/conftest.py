"""Fixtures of the reflip.nn tests."""
from __future__ import annotations

import pytest

from reflip import nn


@pytest.fixture
def backward_modes(monkeypatch):
    """The ``input_only`` flag of every ``Sequential.backward`` call, in order (the cheap
    input-only pass skips the weight VJPs [NN-2])."""
    seen = []
    original = nn.Sequential.backward

    def spy(self, residuals, y_bar, *, input_only=False):
        seen.append(input_only)
        return original(self, residuals, y_bar, input_only=input_only)

    monkeypatch.setattr(nn.Sequential, "backward", spy)
    return seen
