"""Sequential composition: a model is a description (a tuple of layers) plus its parameters (a
list with one ``dict`` of arrays per layer), and its derivative is the layers' VJPs chained in
reverse order [NN-2]."""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from .._backend import get_namespace
from .._validate import NUMERIC_DTYPES, check_floating, check_seed
from .layers import Dense, Layer

__all__ = ["Sequential", "SequentialResiduals", "check_model"]


class SequentialResiduals(NamedTuple):
    """One residual per layer, the output shape the cotangent must have, and the rows whose
    forward pass met NaN (a boolean array, ``(batch,)``) [NN-14]."""

    layers: tuple
    out_shape: tuple
    nan_rows: object = None


def _resolve_dtype(xp, dtype):
    """``xp.float32`` or ``xp.float64`` from the dtype or its name; ``TypeError`` naming
    ``dtype`` for anything else (the policy of every numerical primitive: integer, bool,
    float16, longdouble, complex and object weights are refused, not silently rounded)."""
    for name in NUMERIC_DTYPES:
        target = getattr(xp, name, None)
        if target is None:
            continue
        try:
            # A name, the namespace's dtype object, NumPy's type (np.float64) or np.dtype(...).
            # array_api_strict warns when its dtypes meet NumPy's: they never match, say so once.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if isinstance(dtype, str) and dtype == name or not isinstance(dtype, str) and dtype == target:
                    return target
        except Exception:  # noqa: BLE001 - an object whose == raises is not a dtype we take
            pass
    raise TypeError(f"dtype must be float32 or float64 (a dtype of {getattr(xp, '__name__', xp)!s} or "
                    f"its name), got {dtype!r}")


def _one_namespace(arrays, name):
    try:
        return get_namespace(*arrays)
    except TypeError:
        raise TypeError(f"{name} must be arrays of one array library, got arrays of "
                        f"{sorted({type(a).__module__ for a in arrays})}") from None


def check_model(model, name="model"):
    """``TypeError`` naming ``name`` unless ``model`` is a :class:`Sequential`."""
    if not isinstance(model, Sequential):
        raise TypeError(f"{name} must be a reflip.nn.Sequential, got {type(model).__name__}")
    return model


class Sequential:
    """A feed-forward composition ``f = l_K o ... o l_1`` of :mod:`reflip.nn.layers` layers.

    Widths are checked when the model is built: every :class:`~reflip.nn.Dense` must take the
    width the previous layers output, group sizes must divide the width at their position, and
    ``constraint="pinf"`` (``||W||_{p,inf}``: ``l_p`` input, ``l_inf`` output) is available on
    the first Dense layer only [NN-11].

    Parameters
    ----------
    layers : sequence of Layer
        At least one layer, and at least one Dense layer (it fixes the input width).

    Attributes
    ----------
    in_features, out_features : int
    layers : tuple of Layer
    """

    def __init__(self, layers):
        if not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers must be a list or tuple of reflip.nn layers, got {type(layers).__name__}")
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers must hold at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a reflip.nn layer (Dense, Activation, Scale), "
                                f"got {type(layer).__name__}")
        dense = [i for i, layer in enumerate(layers) if isinstance(layer, Dense)]
        if not dense:
            raise ValueError("layers must include a Dense layer (it fixes the input width)")
        for i in dense[1:]:
            if layers[i].constraint == "pinf":
                raise ValueError(
                    f"layer {i}: constraint='pinf' bounds ||W||_(p,inf) (l_p input, l_inf output) and is "
                    f"available for the first Dense layer only (layer {dense[0]}); use constraint='linf' "
                    f"(||W||_inf, l_inf to l_inf) for later layers")
        self.layers = layers
        self.in_features = layers[dense[0]].in_features
        width = self.in_features
        for i, layer in enumerate(layers):
            width = layer.output_width(width, i)
        self.out_features = width

    # ------------------------------------------------------------------------------------------
    def init(self, seed=0, xp=np, dtype="float64"):
        """Fresh parameters: one ``dict`` per layer (``{}`` for layers without parameters).

        Parameters
        ----------
        seed : int >= 0, numpy SeedSequence or Generator
            Every layer draws from its own child of ``SeedSequence(seed)`` (of the Generator's
            :meth:`~numpy.random.Generator.spawn`), on the host, so the same seed gives the
            same numbers on every backend [NN-12].
        xp : module, default numpy
            The array module of the parameters (``numpy``, ``cupy``, ``array_api_strict``...).
        dtype : "float32", "float64" or one of those dtypes of ``xp``

        Raises
        ------
        TypeError
            ``seed`` not an integer/SeedSequence/Generator; ``dtype`` not float32 or float64.
        ValueError
            A negative ``seed``.
        """
        seed = check_seed(seed)
        if not all(hasattr(xp, attr) for attr in ("asarray", "zeros", "float32", "float64")):
            raise TypeError(f"xp must be an array module (numpy, cupy, array_api_strict...), got {xp!r}")
        dtype = _resolve_dtype(xp, dtype)
        if isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
            children = seed.spawn(len(self.layers))
        else:
            children = np.random.SeedSequence(seed).spawn(len(self.layers))
        return [layer.init(np.random.default_rng(child), xp, dtype)
                for layer, child in zip(self.layers, children, strict=True)]

    def check_params(self, params):
        """Namespace of ``params`` after checking them against the model: a list with one dict
        per layer holding float32/float64 arrays of the layer's shapes, all of one dtype
        (``TypeError`` for a wrong type or dtype, ``ValueError`` for a wrong structure or
        shape, naming ``params[i][name]``)."""
        arrays = self._param_arrays(params)
        xp = _one_namespace(arrays, "params")
        for a in arrays:
            check_floating(a, xp, "params")
            if a.dtype != arrays[0].dtype:
                raise TypeError(f"params mix dtypes {arrays[0].dtype} and {a.dtype}; the model never "
                                f"mixes precisions")
        return xp

    def _param_arrays(self, params):
        if not isinstance(params, (list, tuple)):
            raise TypeError(f"params must be a list of {len(self.layers)} dicts (one per layer), got "
                            f"{type(params).__name__}")
        if len(params) != len(self.layers):
            raise ValueError(f"params must be a list of {len(self.layers)} dicts (one per layer), got "
                             f"{len(params)}")
        arrays = []
        for i, (layer, p) in enumerate(zip(self.layers, params, strict=True)):
            shapes = layer.param_shapes()
            if not isinstance(p, dict) or set(p) != set(shapes):
                got = sorted(p, key=str) if isinstance(p, dict) else type(p).__name__
                raise ValueError(f"params[{i}] ({layer!r}) must be a dict with keys {sorted(shapes)}, got {got}")
            for name, shape in shapes.items():
                get_namespace(**{f"params[{i}][{name!r}]": p[name]})  # TypeError naming it
                if tuple(p[name].shape) != shape:
                    raise ValueError(f"params[{i}][{name!r}] ({layer!r}) must have shape {shape}, "
                                     f"got {tuple(p[name].shape)}")
                arrays.append(p[name])
        return arrays

    def _check(self, params, x):
        """Namespace of ``x`` and ``params``; clear errors for a wrong structure, shape, dtype."""
        arrays = self._param_arrays(params)
        get_namespace(x=x)
        arrays = [x, *arrays]
        xp = _one_namespace(arrays, "x and params")
        check_floating(x, xp, "x")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape (batch, {self.in_features}) for this model, got {tuple(x.shape)}")
        for a in arrays[1:]:
            if a.dtype != x.dtype:
                raise TypeError(f"x has dtype {x.dtype} but the parameters have dtype {a.dtype}; "
                                f"convert one of them (the model never mixes precisions)")
        return xp

    def forward(self, params, x):
        """``(y, residuals)``: the output ``(batch, out_features)`` and what :meth:`backward`
        needs (the inputs of every layer, constrained weights, activation permutations).

        Neither ``x`` nor ``params`` is modified. A row of ``x`` holding NaN gives an all-NaN
        output row [NN-14].
        """
        xp = self._check(params, x)
        residuals = []
        for layer, p in zip(self.layers, params, strict=True):
            x, r = layer.forward(p, x, xp)
            residuals.append(r)
        # A NaN met anywhere in a row's forward pass reaches every entry of its output row
        # [NN-14]: the output alone tells backward which rows have no derivative.
        nan_rows = xp.any(xp.isnan(x), axis=1)
        return x, SequentialResiduals(tuple(residuals), tuple(x.shape), nan_rows)

    def backward(self, residuals, y_bar, *, input_only=False):
        """VJP of :meth:`forward`: ``(x_bar, grads)`` with ``grads`` shaped like ``params``
        (``None`` with ``input_only=True``, which skips the weight and constraint VJPs: the
        cheap path for input gradients and attacks) [NN-1] [NN-2]. ``x_bar`` is NaN on every
        row whose forward pass met NaN [NN-14].

        Parameters
        ----------
        residuals : SequentialResiduals
            From :meth:`forward`.
        y_bar : array (batch, out_features)
            Cotangent of the output; never modified.
        """
        if not isinstance(residuals, SequentialResiduals) or len(residuals.layers) != len(self.layers):
            raise TypeError(f"residuals must be the SequentialResiduals of this model's forward, got "
                            f"{type(residuals).__name__}")
        xp = get_namespace(y_bar=y_bar)
        check_floating(y_bar, xp, "y_bar")
        if tuple(y_bar.shape) != residuals.out_shape:
            raise ValueError(f"y_bar must have the output's shape {residuals.out_shape}, got {tuple(y_bar.shape)}")
        grads = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            y_bar, grads[i] = self.layers[i].backward(residuals.layers[i], y_bar, xp, input_only)
        if residuals.nan_rows is not None:
            # The chained VJPs alone would give a finite x_bar at a NaN row: GroupSort passes a
            # NaN group through as a permutation, ReLU's mask reads NaN > 0 as 0. The function
            # has no derivative there, so the row is NaN [NN-14]. (The weight gradients are NaN
            # already: they sum y_bar^T x over the rows, NaN ones included.)
            y_bar = xp.where(residuals.nan_rows[:, None], xp.asarray(xp.nan, dtype=y_bar.dtype), y_bar)
        return y_bar, None if input_only else grads

    def __call__(self, params, x):
        """The output only (no residuals; Björck keeps no iterates)."""
        xp = self._check(params, x)
        for layer, p in zip(self.layers, params, strict=True):
            x = layer.apply(p, x, xp)
        return x

    def effective_weights(self, params):
        """The constrained weights ``W_eff`` of the Dense layers, in order."""
        self.check_params(params)
        return [layer.effective_weight(p, get_namespace(p["W"]))
                for layer, p in zip(self.layers, params, strict=True) if isinstance(layer, Dense)]

    def freeze(self, params):
        """``(model, params)`` computing the same function with every constraint applied once:
        Dense layers become ``constraint="none"`` holding ``W_eff``. Evaluations, attacks and
        bounds use it so that Björck runs once, not at every call."""
        self.check_params(params)
        layers, frozen = [], []
        for layer, p in zip(self.layers, params, strict=True):
            if isinstance(layer, Dense):
                w_eff = layer.effective_weight(p, get_namespace(p["W"]))
                layer = Dense(layer.in_features, layer.out_features, "none", bias=layer.bias)
                p = {**p, "W": w_eff}
            layers.append(layer)
            frozen.append(p)
        return Sequential(layers), frozen

    def config(self):
        """JSON-serialisable description (see :func:`reflip.nn.save`)."""
        return {"type": "Sequential", "layers": [layer.config() for layer in self.layers]}

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = ",\n    ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n    {inner},\n])"
