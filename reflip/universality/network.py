"""MaxMin networks as values: affine layers with MaxMin between them, the universality
constraints, and the evaluation with hand-written VJP and JVP (the registry primitive
``max_min_network``).

A network ``F = A_L o MM o A_{L-1} o ... o MM o A_1`` is a tuple of affine layers; MaxMin
(:func:`reflip.max_min`, pairs ``(a, b) -> (min, max)``) acts between consecutive layers, so
every hidden width is even. A layer is either

- :class:`Dense` ``(W, b)``: ``z = h W^T + b``, or
- :class:`Select` ``index``: ``z = h[..., index]``, i.e. ``W = I[index]`` (row ``r`` is the unit
  vector ``e_{index[r]}``) and ``b = 0``. It is an affine layer like any other, stored as its
  indices because the reductions of the universality construction are selections whose dense
  matrices would be quadratic in the width (see :meth:`MaxMinNetwork.size`).

The universality constraints of the paper (claim C7) for inputs in ``(R^n, l_p)`` are
``||W_1||_{p,inf} = max_i ||w_i||_q <= 1`` (``1/p + 1/q = 1``) and ``||W_k||_inf =
max_i ||w_i||_1 <= 1`` for ``k >= 2``; they make ``F`` 1-Lipschitz from ``l_p`` to ``R`` [UN-1].

Types (``x`` has the input features on its last axis)::

    max_min_network_fwd :: (x[..., n], network) -> (y[..., m], MaxMinNetworkResiduals)
    max_min_network_bwd :: (MaxMinNetworkResiduals, y_bar[..., m]) -> x_bar[..., n]
    max_min_network_jvp :: (MaxMinNetworkResiduals, x_dot[..., n]) -> y_dot[..., m]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._backend import get_namespace, host
from .._registry import Primitive, register
from .._validate import (
    NUMERIC_DTYPES,
    check_choice,
    check_cotangent,
    check_floating,
    check_int,
    check_real,
    check_seed,
)
from ..groupsort import group_sort_bwd, group_sort_fwd, group_sort_jvp, max_min
from ..norms import check_p, dual_exponent

__all__ = [
    "Dense",
    "Select",
    "MaxMinNetwork",
    "NetworkSize",
    "MaxMinNetworkResiduals",
    "max_min_network",
    "max_min_network_fwd",
    "max_min_network_bwd",
    "max_min_network_jvp",
    "check_p",
    "host",
    "dual_exponent",
    "affine_network",
    "random_constrained_network",
]


def _namespace(a, name):
    """The array-API namespace of ``a``; ``TypeError`` naming ``name`` for a non-array."""
    return get_namespace(**{name: a})


def _host_array(a, name):
    """``host(a)``, with a ``TypeError`` naming ``name`` for what is not an array at all."""
    try:
        return host(a, dtype=None)
    except Exception as exc:  # noqa: BLE001 - any failure to convert is a wrong type
        raise TypeError(f"{name} must be an array of real numbers, got {type(a).__name__} ({exc})") from None


def _is_real(a):
    """Integer or floating dtype (bools, complex, strings and objects are not numbers here)."""
    return np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)


def _readonly(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Dense:
    """Affine layer ``z = h W^T + b``; ``W`` is ``(out, in)``, ``b`` is ``(out,)``, stored as
    read-only float64 copies."""

    W: np.ndarray
    b: np.ndarray

    def __post_init__(self):
        w, b = _host_array(self.W, "Dense: W"), _host_array(self.b, "Dense: b")
        for name, a in (("W", w), ("b", b)):
            if not _is_real(a):
                raise TypeError(f"Dense: {name} must be real numbers, got dtype {a.dtype}")
        if w.ndim != 2 or 0 in w.shape:
            raise ValueError(f"Dense: W must be a non-empty (out, in) matrix, got shape {w.shape}")
        if b.shape != (w.shape[0],):
            raise ValueError(f"Dense: b must have shape ({w.shape[0]},) to match W {w.shape}, got {b.shape}")
        for name, a in (("W", w), ("b", b)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"Dense: {name} must be finite")
        object.__setattr__(self, "W", _readonly(w.astype(np.float64)))
        object.__setattr__(self, "b", _readonly(b.astype(np.float64)))

    @property
    def n_in(self):
        return self.W.shape[1]

    @property
    def n_out(self):
        return self.W.shape[0]

    def dense(self):
        """``(W, b)`` as float64 arrays."""
        return self.W, self.b

    def row_norms(self, q):
        """``||w_i||_q`` of every row (float64)."""
        return np.linalg.norm(self.W, ord=q, axis=1)

    def nonzeros(self):
        return int(np.count_nonzero(self.W) + np.count_nonzero(self.b))

    def __repr__(self):
        return f"Dense(W={self.W.tolist()!r}, b={self.b.tolist()!r})"


@dataclass(frozen=True, eq=False)
class Select:
    """Selection layer ``z = h[..., index]``: the affine layer ``W = I[index]`` (row ``r`` is
    ``e_{index[r]}``), ``b = 0``. Every row has ``||w_r||_q = 1`` for every ``q``."""

    index: np.ndarray
    n_in: int

    def __post_init__(self):
        idx = _host_array(self.index, "Select: index")
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"Select: index must be an integer array, got dtype {idx.dtype}")
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError(f"Select: index must be a non-empty 1-d integer array, got shape {idx.shape}")
        n_in = check_int(self.n_in, "Select: n_in", minimum=1)
        if idx.min() < 0 or idx.max() >= n_in:
            raise ValueError(f"Select: index entries must lie in [0, n_in={n_in}), got [{idx.min()}, {idx.max()}]")
        object.__setattr__(self, "index", _readonly(idx.astype(np.int64)))
        object.__setattr__(self, "n_in", n_in)

    @property
    def n_out(self):
        return self.index.shape[0]

    def dense(self):
        """``(W, b)`` with ``W = I[index]`` materialized (float64)."""
        w = np.zeros((self.n_out, self.n_in))
        w[np.arange(self.n_out), self.index] = 1.0
        return w, np.zeros(self.n_out)

    def row_norms(self, q):
        return np.ones(self.n_out)

    def nonzeros(self):
        return self.n_out

    def transpose_index(self):
        """``(k, n_in)`` gather indices of the transpose: ``W^T v = sum_t [v, 0][inv[t]]``,
        with ``inv[t, j]`` the ``t``-th output selecting input ``j`` or ``n_out`` (a zero
        column appended to ``v``) when there are fewer than ``t + 1``. The array API has no
        scatter-add, so the transpose of a gather is written as ``k`` gathers, ``k`` the
        largest number of times one input is selected."""
        order = np.argsort(self.index, kind="stable")
        counts = np.bincount(self.index, minlength=self.n_in)
        k = int(counts.max())
        inv = np.full((k, self.n_in), self.n_out, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(self.n_out) - starts[self.index[order]]
        inv[rank, self.index[order]] = order
        return inv

    def __repr__(self):
        return f"Select(index={self.index.tolist()!r}, n_in={self.n_in})"


class NetworkSize(NamedTuple):
    """Size of a :class:`MaxMinNetwork`.

    ``depth`` counts affine layers (``depth - 1`` MaxMin layers); ``widths`` are the hidden
    widths; ``dense_parameters`` is the number of weights and biases of the network written
    with dense layers (what ``to_sequential`` holds); ``stored`` the numbers this object stores
    (matrix entries, biases and selection indices); ``nonzero`` the non-zero weights and biases.
    """

    n_in: int
    depth: int
    widths: tuple
    max_width: int
    dense_parameters: int
    stored: int
    nonzero: int


@dataclass(frozen=True, eq=False)
class MaxMinNetwork:
    """``F = A_L o MM o ... o MM o A_1``: affine layers with MaxMin between consecutive ones.

    Parameters
    ----------
    layers : sequence of Dense or Select
        ``layers[k].n_in`` must equal ``layers[k - 1].n_out``; every hidden width (the output
        width of every layer but the last) must be even, since MaxMin acts on pairs.

    Calling the network evaluates it on any array-API array (:func:`max_min_network`).
    """

    layers: tuple

    def __post_init__(self):
        if isinstance(self.layers, (str, bytes)) or not hasattr(self.layers, "__iter__"):
            raise TypeError(f"MaxMinNetwork: layers must be a sequence of Dense or Select layers, got "
                            f"{type(self.layers).__name__}")
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("MaxMinNetwork: layers must hold at least one affine layer")
        for k, layer in enumerate(layers):
            if not isinstance(layer, (Dense, Select)):
                raise TypeError(f"MaxMinNetwork: layer {k} must be a Dense or Select, got {type(layer).__name__}")
            if k and layer.n_in != layers[k - 1].n_out:
                raise ValueError(f"MaxMinNetwork: layer {k} takes {layer.n_in} features but layer {k - 1} "
                                 f"outputs {layers[k - 1].n_out}")
            if k < len(layers) - 1 and layer.n_out % 2:
                raise ValueError(f"MaxMinNetwork: hidden width {layer.n_out} after layer {k} is odd; MaxMin "
                                 f"acts on pairs")
        object.__setattr__(self, "layers", layers)

    @property
    def n_in(self):
        return self.layers[0].n_in

    @property
    def n_out(self):
        return self.layers[-1].n_out

    @property
    def depth(self):
        """Number of affine layers (MaxMin layers: ``depth - 1``)."""
        return len(self.layers)

    def __call__(self, x):
        """``F(x)`` for ``x`` of shape ``(..., n_in)`` on any array-API backend."""
        return max_min_network(x, network=self)

    def weights(self):
        """``[(W_1, b_1), ..., (W_L, b_L)]`` as dense float64 arrays (selections materialized)."""
        return [layer.dense() for layer in self.layers]

    def size(self) -> NetworkSize:
        widths = tuple(layer.n_out for layer in self.layers[:-1])
        dense = sum(layer.n_out * (layer.n_in + 1) for layer in self.layers)
        stored = sum(layer.W.size + layer.b.size if isinstance(layer, Dense) else layer.n_out
                     for layer in self.layers)
        return NetworkSize(self.n_in, self.depth, widths, max(widths, default=0), dense, stored,
                           sum(layer.nonzeros() for layer in self.layers))

    def constraint_norms(self, p):
        """``(||W_1||_{p,inf}, max_{k >= 2} ||W_k||_inf)`` in float64 (the second is 0 for a
        single layer) [UN-1]. A selection's rows are unit vectors, so its norm is exactly 1."""
        q = dual_exponent(p)
        first = float(self.layers[0].row_norms(q).max())
        later = max((float(layer.row_norms(1).max()) for layer in self.layers[1:]), default=0.0)
        return first, later

    def satisfies_constraints(self, p):
        """Whether ``||W_1||_{p,inf} <= 1`` and ``||W_k||_inf <= 1`` (k >= 2) as computed in
        float64 [UN-1] (the constructions of this package also hold them in exact arithmetic)."""
        first, later = self.constraint_norms(p)
        return first <= 1.0 and later <= 1.0

    def to_sequential(self, xp=np, dtype="float64", max_parameters=50_000_000):
        """The network as ``(model, params)`` of :mod:`reflip.nn`: ``Dense(constraint="none")``
        layers with ``Activation("max_min")`` between them and ``params[k] = {"W", "b"}``
        (``{}`` for the activations), the dense weights of :meth:`weights`.

        Raises ``ValueError`` when the dense network would hold more than ``max_parameters``
        numbers (the reductions of a large interpolant are quadratic in its width when dense).
        """
        from .. import nn

        max_parameters = check_int(max_parameters, "max_parameters", minimum=1)
        size = self.size()
        if size.dense_parameters > max_parameters:
            raise ValueError(f"to_sequential: the dense network would hold {size.dense_parameters} parameters "
                             f"> max_parameters={max_parameters} (stored here as {size.stored} numbers); "
                             f"raise max_parameters to build it anyway")
        layers, params = [], []
        dtypes = [getattr(xp, name, None) for name in NUMERIC_DTYPES]
        if None in dtypes:
            raise TypeError(f"xp must be an array namespace (numpy, cupy, array_api_strict...), got {xp!r}")
        if isinstance(dtype, str):
            dtype = dtypes[NUMERIC_DTYPES.index(check_choice(dtype, "dtype", NUMERIC_DTYPES))]
        elif not any(dtype == d for d in dtypes):
            raise TypeError(f"dtype must be 'float32' or 'float64' (or xp's float32/float64), got {dtype!r}")
        for k, (w, b) in enumerate(self.weights()):
            if k:
                layers.append(nn.Activation("max_min"))
                params.append({})
            layers.append(nn.Dense(w.shape[1], w.shape[0], constraint="none"))
            params.append({"W": xp.asarray(w, dtype=dtype), "b": xp.asarray(b, dtype=dtype)})
        return nn.Sequential(layers), params

    def __repr__(self):
        # Paste-able (with Dense, Select, MaxMinNetwork imported) while small: hypothesis and
        # the audit print failing cases with it.
        size = self.size()
        if size.stored <= 4096:
            return f"MaxMinNetwork(({''.join(repr(layer) + ', ' for layer in self.layers)}))"
        return f"<MaxMinNetwork n_in={self.n_in} depth={self.depth} widths={size.widths}>"


def affine_network(w, c):
    """The one-layer network ``x -> w . x + c`` (a scalar output)."""
    w = _host_array(w, "w")
    if not _is_real(w):
        raise TypeError(f"w must be real numbers, got dtype {w.dtype}")
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"w must be a non-empty 1-d vector, got shape {w.shape}")
    c = check_real(c, "c")
    return MaxMinNetwork((Dense(w.astype(np.float64)[None, :], np.array([c])),))


# ----------------------------------------------------------------------------------------------
# Evaluation: the registry primitive


class MaxMinNetworkResiduals(NamedTuple):
    """What the derivatives need: every layer's weights on the input's backend and dtype and
    every MaxMin layer's sorting permutation."""

    layers: tuple  # per layer ("dense", W) or ("select", index, transpose_index)
    activations: tuple  # GroupSortResiduals, one per MaxMin layer
    in_shape: tuple

    @property
    def shape(self):
        """Shape of the input ``x``, which every tangent ``x_dot`` must have."""
        return tuple(self.in_shape)

    @property
    def out_shape(self):
        """Shape of the output ``y`` (the input's batch axes, the last layer's width), which
        every cotangent ``y_bar`` must have."""
        return (*self.in_shape[:-1], self.layers[-1][1].shape[0])


def _check_x(x, network, xp):
    if not isinstance(network, MaxMinNetwork):
        raise TypeError(f"network must be a reflip.universality.MaxMinNetwork, got {type(network).__name__}")
    check_floating(x, xp, "x")
    if x.ndim == 0 or x.shape[-1] != network.n_in:
        raise ValueError(f"x must have shape (..., {network.n_in}) (the network's input width), "
                         f"got {tuple(x.shape)}")


def _check_residuals(residuals):
    if not isinstance(residuals, MaxMinNetworkResiduals):
        raise TypeError(f"residuals must be the MaxMinNetworkResiduals returned by max_min_network_fwd, "
                        f"got {type(residuals).__name__}")


def _on_backend(network, x, xp, transpose=False):
    """Every layer's weights on ``x``'s backend, dtype and device: ``("dense", W, b)`` or
    ``("select", index, transpose_index or None)``."""
    device = getattr(x, "device", None)
    out = []
    for layer in network.layers:
        if isinstance(layer, Dense):
            out.append(("dense", xp.asarray(layer.W, dtype=x.dtype, device=device),
                        xp.asarray(layer.b, dtype=x.dtype, device=device)))
        else:
            inv = xp.asarray(layer.transpose_index(), dtype=xp.int64, device=device) if transpose else None
            out.append(("select", xp.asarray(layer.index, dtype=xp.int64, device=device), inv))
    return out


def _affine(spec, h, xp):
    if spec[0] == "dense":
        return h @ spec[1].T + spec[2]
    return xp.take(h, spec[1], axis=-1)


def _linear(spec, h_dot, xp):
    if spec[0] == "dense":
        return h_dot @ spec[1].T
    return xp.take(h_dot, spec[1], axis=-1)


def _transpose(spec, v, xp):
    if spec[0] == "dense":
        return v @ spec[1]
    _, _, inv = spec
    # v W for W = I[index]: entry j sums the cotangents of the outputs that select j.
    padded = xp.concat([v, xp.zeros((*v.shape[:-1], 1), dtype=v.dtype, device=getattr(v, "device", None))],
                       axis=-1)
    out = None
    for t in range(inv.shape[0]):
        part = xp.take(padded, inv[t, :], axis=-1)
        out = part if out is None else out + part
    return out


def max_min_network_fwd(x, *, network):
    """Evaluate a MaxMin network, returning the residuals of the derivatives.

    .. math:: F(x) = A_L(\\mathrm{MM}(A_{L-1}(\\cdots \\mathrm{MM}(A_1 x)\\cdots)))

    with ``A_k h = h W_k^T + b_k`` (or a selection) and MM = :func:`reflip.max_min` [UN-2].

    Parameters
    ----------
    x : array (..., n_in), real floating, any array-API backend; never modified
    network : MaxMinNetwork
        Its float64 weights are converted to ``x``'s dtype and device.

    Returns
    -------
    y : array (..., n_out)
    residuals : MaxMinNetworkResiduals
    """
    xp = _namespace(x, "x")
    _check_x(x, network, xp)
    specs = _on_backend(network, x, xp, transpose=True)
    h, acts = x, []
    for k, spec in enumerate(specs):
        h = _affine(spec, h, xp)
        if k < len(specs) - 1:
            h, res = group_sort_fwd(h, 2)
            acts.append(res)
    return h, MaxMinNetworkResiduals(tuple(specs), tuple(acts), tuple(x.shape))


def max_min_network_bwd(residuals, y_bar):
    """VJP of a MaxMin network: ``x_bar = W_1^T P_1^T W_2^T ... P_{L-1}^T W_L^T y_bar`` with
    ``P_k`` the permutation matrices of the MaxMin layers at ``x`` [UN-2] [GS-4]; a selection's
    transpose adds the cotangents of the outputs that select the same input."""
    xp = _namespace(y_bar, "y_bar")
    _check_residuals(residuals)
    check_cotangent("y_bar", y_bar, residuals.out_shape, xp)
    specs, acts, _ = residuals
    v = y_bar
    for k in range(len(specs) - 1, -1, -1):
        v = _transpose(specs[k], v, xp)
        if k:
            v = group_sort_bwd(acts[k - 1], v)
    return v


def max_min_network_jvp(residuals, x_dot):
    """JVP of a MaxMin network: ``y_dot = W_L P_{L-1} ... P_1 W_1 x_dot`` [UN-2] [GS-4]."""
    xp = _namespace(x_dot, "x_dot")
    _check_residuals(residuals)
    check_cotangent("x_dot", x_dot, residuals.shape, xp)
    specs, acts, _ = residuals
    h = x_dot
    for k, spec in enumerate(specs):
        h = _linear(spec, h, xp)
        if k < len(specs) - 1:
            h = group_sort_jvp(acts[k], h)
    return h


def max_min_network(x, *, network):
    """``F(x)`` for a :class:`MaxMinNetwork` ``network`` (see :func:`max_min_network_fwd`),
    without keeping the residuals."""
    xp = _namespace(x, "x")
    _check_x(x, network, xp)
    h = x
    specs = _on_backend(network, x, xp)
    for k, spec in enumerate(specs):
        h = _affine(spec, h, xp)
        if k < len(specs) - 1:
            h = max_min(h)
    return h


MAX_MIN_NETWORK = register(
    Primitive(
        name="max_min_network",
        fun=max_min_network,
        fwd=max_min_network_fwd,
        bwd=max_min_network_bwd,
        jvp=max_min_network_jvp,
        proof="UN-2",
        # MaxMin's permutation is piecewise constant in x and the layers are affine: the
        # second derivative is 0 almost everywhere, as for GroupSort [GS-11].
        second_order=True,
        strategy="reflip.testing.strategies:max_min_network_cases",
        piecewise_linear=True,
    )
)


# ----------------------------------------------------------------------------------------------
# Random constrained networks (test targets and lattice operands)


def _dyadic_rows(rng, rows, cols, q, bits):
    """Integer rows ``k`` scaled by ``2^-bits`` with ``||k||_q <= 2^bits`` exactly: the
    constraint holds for the stored floats, checkable in exact arithmetic. About a third of the
    rows reach the bound (their norm is exactly 1 for ``q`` in {1, inf}, as close as integers
    allow for ``q = 2``)."""
    scale = 2**bits
    raw = rng.standard_normal((rows, cols))
    norms = np.linalg.norm(raw, ord=q, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    target = np.where(rng.random((rows, 1)) < 1 / 3, 1.0, rng.uniform(0.2, 1.0, (rows, 1)))
    k = np.trunc(raw / norms * target * scale)  # truncation moves towards 0: ||k||_q <= target 2^bits
    if q == 1:
        # Put what truncation lost back on the largest entry so that some rows are exactly on the sphere.
        big = np.argmax(np.abs(k), axis=1)
        full = (target[:, 0] == 1.0)
        lost = scale - np.sum(np.abs(k), axis=1)
        sign = np.where(k[np.arange(rows), big] < 0, -1.0, 1.0)
        k[np.arange(rows), big] += np.where(full, sign * lost, 0.0)
    return k / scale


def random_constrained_network(n_in, widths, p, *, seed=0, bits=8, bias_scale=1.0, n_out=1,
                               max_parameters=50_000_000):
    """A random MaxMin network satisfying the universality constraints for ``l_p`` exactly.

    Every weight is a multiple of ``2^-bits`` (so the constraints hold in exact arithmetic for
    the stored floats, and evaluations on dyadic inputs are exact while the precision lasts);
    first-layer rows have ``||w||_q <= 1``, later rows ``||w||_1 <= 1``; biases are multiples of
    ``2^-bits`` in ``[-bias_scale, bias_scale]``.

    Parameters
    ----------
    n_in : int
    widths : sequence of int
        Hidden widths (even).
    p : 1, 2 or inf
    seed : int >= 0, numpy Generator or SeedSequence
    bits : int in [1, 26]
        Weights are multiples of ``2^-bits``. At most 26 bits keep the squares of the integer
        numerators (at most ``2^52``) exact in float64, so truncation towards 0 is what keeps
        ``||k||_q <= 2^bits`` (with more bits the rounding of ``raw / ||raw||_q`` could reach the
        integer part).
    bias_scale : float >= 0
    n_out : int, default 1
    max_parameters : int, default 50,000,000
        Refuse larger networks (``ValueError``) before allocating them.
    """
    q = dual_exponent(p)
    n_in = check_int(n_in, "n_in", minimum=1)
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise TypeError(f"widths must be a sequence of even integers, got {type(widths).__name__}")
    widths = [check_int(w, f"widths[{k}]", minimum=2) for k, w in enumerate(widths)]
    odd = [w for w in widths if w % 2]
    if odd:
        raise ValueError(f"every hidden width must be even (MaxMin acts on pairs), got widths={widths}")
    seed = check_seed(seed)
    bits = check_int(bits, "bits", minimum=1, maximum=26)
    bias_scale = check_real(bias_scale, "bias_scale", minimum=0.0)
    n_out = check_int(n_out, "n_out", minimum=1)
    max_parameters = check_int(max_parameters, "max_parameters", minimum=1)
    sizes = [n_in, *widths, n_out]
    count = sum(o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:], strict=True))  # Python ints: no overflow
    if count > max_parameters:
        raise ValueError(f"random_constrained_network: n_in={n_in}, widths={widths}, n_out={n_out} make "
                         f"{count} parameters > max_parameters={max_parameters}")
    rng = np.random.default_rng(seed)
    layers = []
    for k in range(len(sizes) - 1):
        w = _dyadic_rows(rng, sizes[k + 1], sizes[k], q if k == 0 else 1, bits)
        b = np.round(rng.uniform(-bias_scale, bias_scale, sizes[k + 1]) * 2**bits) / 2**bits
        layers.append(Dense(w, b))
    return MaxMinNetwork(tuple(layers))
