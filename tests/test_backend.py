"""Backend helpers."""
import array_api_strict
import numpy as np
import pytest

from reflip import to_numpy
from reflip._backend import get_namespace
from reflip._validate import check_axis, check_int


def test_to_numpy_roundtrip(backend):
    a = np.arange(6.0).reshape(2, 3)
    with backend.active():
        out = to_numpy(backend.asarray(a))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, a)


def test_get_namespace_rejects_non_arrays_and_mixtures():
    with pytest.raises(TypeError, match="must be an array"):
        get_namespace([1.0])
    with pytest.raises(TypeError, match="^w must be an array .* got list"):
        get_namespace(w=[1.0])
    with pytest.raises(TypeError, match="^u must be an array .* got NoneType"):
        get_namespace(w=np.ones(2), u=None)
    with pytest.raises(TypeError, match="^w, u must be arrays of one array library"):
        get_namespace(w=np.zeros(2), u=array_api_strict.asarray([1.0]))


def test_checks():
    assert check_axis(-1, 3) == 2
    with pytest.raises(ValueError, match="out of range"):
        check_axis(3, 3)
    with pytest.raises(TypeError, match="n must be an integer"):
        check_int(1.5, "n")
    assert check_int(np.int64(3), "n", minimum=1) == 3


def test_safe_divisor_replaces_only_the_unused_entries(backend):
    """The one guard of divisions whose result is discarded: d where d > 0 (or where ``use``),
    1 elsewhere, so no division by zero and no NaN reaches a residual."""
    from reflip._backend import safe_divisor

    d = np.array([2.0, 0.0, -0.0, 3.0, 0.5])
    use = np.array([True, True, False, False, True])
    with backend.active():
        xp = get_namespace(backend.asarray(d))
        default = np.asarray(to_numpy(safe_divisor(backend.asarray(d), xp)))
        chosen = np.asarray(to_numpy(safe_divisor(backend.asarray(d), xp, backend.asarray(use))))
    np.testing.assert_array_equal(default, [2.0, 1.0, 1.0, 3.0, 0.5])
    np.testing.assert_array_equal(chosen, [2.0, 0.0, 1.0, 1.0, 0.5])
