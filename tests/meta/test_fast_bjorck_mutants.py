"""Planted bugs in the fused Björck step [BJ-11] are caught by tests/test_fast_bjorck.py's
check of the fast path against the core (and the unmutated path passes the same check)."""
import numpy as np
import pytest

from reflip._fast import numpy_bjorck as nb
from tests.test_fast_bjorck import check_fast_against_core


def _gemm_mutant(change):
    """``nb._gemm`` with its ``(alpha, beta)`` replaced by ``change(alpha, beta)``."""
    original = nb._gemm

    def gemm(fn, alpha, a, b, beta, c):
        return original(fn, *_swap(change(alpha, beta), a, b), c)

    return gemm


def _swap(ab, a, b):
    alpha, beta = ab
    return alpha, a, b, beta


def _no_diagonal(r):
    """The diagonal add lands in a throwaway copy: ``a_i I`` is lost."""
    return np.diagonal(r).copy()


def _no_mirror(c, block=None):
    """The SYRK triangle left unmirrored: the lower triangle of ``X`` is whatever was there."""


MUTANTS = {
    # beta = a_0 (the constant term of P) off by one part in a million.
    "beta_off_by_1e-6": ("_gemm", _gemm_mutant(lambda al, be: (al, be * (1 + 1e-6) if be not in (0.0, 1.0) else be))),
    # The accumulation into the output dropped (beta = 1 read as 0).
    "accumulation_dropped": ("_gemm", _gemm_mutant(lambda al, be: (al, 0.0 if be == 1.0 else be))),
    # alpha ignored (a_1, a_p taken as 1).
    "alpha_ignored": ("_gemm", _gemm_mutant(lambda al, be: (1.0, be))),
    "diagonal_add_missing": ("_diagonal", _no_diagonal),
    "gram_triangle_not_mirrored": ("_mirror_upper", _no_mirror),
}


@pytest.mark.parametrize("mutant", [None, *MUTANTS])
def test_planted_bugs_in_the_fused_step_are_caught(mutant, monkeypatch):
    """[BJ-11] every mutant breaks the proved bound somewhere among orders 1 and 3 (the
    diagonal add exists only from order 2), float64, square and tall; the real path holds."""
    monkeypatch.setattr(nb, "MIN_N", 1)  # small matrices take the fast path here
    if mutant is not None:
        monkeypatch.setattr(nb, *MUTANTS[mutant])
    rng = np.random.default_rng(11)
    failures = []
    for order in (1, 3):
        for shape in [(24, 24), (40, 16)]:
            w, g = rng.standard_normal(shape), rng.standard_normal(shape)
            try:
                with monkeypatch.context() as m:
                    check_fast_against_core(w, g, order, m)
            except AssertionError as err:
                failures.append((order, shape, str(err)[:80]))
    if mutant is None:
        assert not failures, failures
    else:
        assert failures, f"mutant {mutant} passed every check"
