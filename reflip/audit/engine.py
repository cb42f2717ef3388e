"""Claim records and the runner that feeds them hypothesis cases on one backend and dtype."""
from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .._backend import to_numpy
from .._registry import get as get_primitive

__all__ = ["Claim", "ClaimFailure", "ClaimResult", "CLAIMS", "register_claim", "claims_for",
           "run_claim", "rng_for", "host", "device_array", "PROFILES"]


class ClaimFailure(AssertionError):
    """A claim does not hold for an implementation on a drawn case."""


@dataclass(frozen=True)
class Claim:
    """One checkable statement about one primitive.

    ``check(impl, case, backend, dtype) -> dict[str, float]`` raises :class:`ClaimFailure`
    when the claim fails and otherwise returns measured figures (the suite reports the worst
    value of each over all cases, so larger must mean worse).
    """

    id: str
    primitive: str
    label: str
    statement: str
    kind: str
    check: Callable
    backends: tuple[str, ...] | None = None  # None: every backend

    def applies_to(self, backend) -> bool:
        return self.backends is None or backend.name in self.backends


@dataclass
class ClaimResult:
    claim: Claim
    backend: str
    dtype: str
    passed: bool
    figures: dict = field(default_factory=dict)
    examples: int = 0
    seconds: float = 0.0
    error: str = ""


CLAIMS: dict[str, Claim] = {}

# Hypothesis profiles of reflip's own runs: `reflip audit --profile` and the tests' profiles.
PROFILES = {"quick": 25, "ci": 25, "default": 50, "thorough": 500}


def register_claim(claim: Claim) -> Claim:
    if claim.id in CLAIMS:
        raise ValueError(f"claim {claim.id!r} is already registered")
    CLAIMS[claim.id] = claim
    return claim


def claims_for(primitive: str):
    from . import claims  # noqa: F401  (registers the claims of every primitive)

    return [c for c in CLAIMS.values() if c.primitive == primitive]


def rng_for(*arrays):
    """A NumPy generator seeded by the case's bytes: directions and cotangents are then a
    function of the case, so a failure reproduces from hypothesis's printed example alone."""
    seed = 0
    for a in arrays:
        seed = zlib.crc32(np.ascontiguousarray(a).tobytes(), seed)
    return np.random.default_rng(seed)


def host(a, dtype=np.float64):
    """Backend array -> NumPy array of ``dtype`` (float64 by default, for exact reductions)."""
    return np.asarray(to_numpy(a), dtype=dtype)


def device_array(backend, a, dtype):
    """NumPy array -> backend array of dtype name ``dtype``, read-only on NumPy so that an
    implementation that writes into its input fails loudly."""
    a = np.array(a, dtype=dtype)
    if backend.name == "numpy":
        a.flags.writeable = False
        return a
    return backend.asarray(a)


def run_claim(claim: Claim, impl, backend, dtype: str, *, settings=None) -> ClaimResult:
    """Run ``claim`` on ``impl`` over hypothesis cases; re-raise hypothesis's failure (with its
    reproduction) unless ``settings`` is given, in which case failures are returned."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings

    factory = get_primitive(claim.primitive).strategy_factory()
    result = ClaimResult(claim, backend.name, dtype, passed=False)
    figures = result.figures

    base = settings if settings is not None else hsettings()
    configured = hsettings(
        base,
        deadline=None,
        database=None if settings is not None else base.database,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
    )

    @configured
    @given(factory(dtype, claim.kind))
    def holds(case):
        with backend.active():
            measured = claim.check(impl, case, backend, dtype) or {}
        for key, value in measured.items():
            figures[key] = max(figures.get(key, -math.inf), float(value))
        result.examples += 1

    start = time.perf_counter()
    try:
        holds()
        result.passed = True
    except Exception as exc:  # the report names the failure; pytest gets it re-raised
        result.error = f"{type(exc).__name__}: {exc}"
        if settings is None:
            raise
    finally:
        result.seconds = time.perf_counter() - start
    return result
