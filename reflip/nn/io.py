"""Parameters in ``.npz`` files [NN-13]: array ``"{i}/{name}"`` is ``params[i][name]``, and
``"__model__"`` (when saved) the model's JSON description, so that :func:`load_model` rebuilds
both. Nothing is pickled: files load with ``allow_pickle=False``."""
from __future__ import annotations

import json
import re

import numpy as np

from .._backend import to_numpy
from .layers import LAYER_TYPES
from .model import Sequential

__all__ = ["save", "load", "load_model", "model_from_config"]

_KEY = re.compile(r"^(\d+)/(\w+)$")
_FORMAT = "reflip.nn/1"


def save(path, params, model=None):
    """Write ``params`` (any backend; copied to the host) and, optionally, ``model``'s
    description to ``path`` (``.npz``, uncompressed). Entries are float arrays in their dtype."""
    arrays = {}
    for i, layer_params in enumerate(params):
        if not isinstance(layer_params, dict):
            raise TypeError(f"params[{i}] must be a dict, got {type(layer_params).__name__}")
        for name, a in layer_params.items():
            arrays[f"{i}/{name}"] = to_numpy(a)
    header = {"format": _FORMAT, "n_layers": len(params)}
    if model is not None:
        if len(model.layers) != len(params):
            raise ValueError(f"model has {len(model.layers)} layers but params {len(params)} entries")
        header["model"] = model.config()
    arrays["__model__"] = np.asarray(json.dumps(header))
    np.savez(path, **arrays)


def _read(path, xp):
    with np.load(path, allow_pickle=False) as f:
        if "__model__" not in f.files:
            raise ValueError(f"{path} is not a reflip.nn parameter file (no '__model__' entry)")
        header = json.loads(str(f["__model__"]))
        if header.get("format") != _FORMAT:
            raise ValueError(f"{path}: unknown format {header.get('format')!r}, expected {_FORMAT!r}")
        params = [{} for _ in range(header["n_layers"])]
        for key in f.files:
            if key == "__model__":
                continue
            match = _KEY.match(key)
            if match is None or int(match.group(1)) >= len(params):
                raise ValueError(f"{path}: unexpected entry {key!r}")
            a = f[key]
            params[int(match.group(1))][match.group(2)] = a if xp is None else xp.asarray(a)
    return header, params


def load(path, xp=None):
    """The parameters saved in ``path``: NumPy arrays, or arrays of ``xp`` (e.g. ``cupy``)."""
    return _read(path, xp)[1]


def model_from_config(config):
    """Rebuild a :class:`Sequential` from :meth:`Sequential.config`."""
    if config.get("type") != "Sequential":
        raise ValueError(f"expected a Sequential description, got type {config.get('type')!r}")
    layers = []
    for cfg in config["layers"]:
        cfg = dict(cfg)
        kind = cfg.pop("type")
        if kind not in LAYER_TYPES:
            raise ValueError(f"unknown layer type {kind!r}; known: {sorted(LAYER_TYPES)}")
        if kind == "Dense":
            layers.append(LAYER_TYPES[kind](cfg.pop("in_features"), cfg.pop("out_features"), cfg.pop("constraint"),
                                            **cfg))
        else:
            layers.append(LAYER_TYPES[kind](**cfg))
    return Sequential(layers)


def load_model(path, xp=None):
    """``(model, params)`` from a file written by ``save(path, params, model)``. The
    parameters are checked against the model (one dict per layer, the right shapes)."""
    header, params = _read(path, xp)
    if "model" not in header:
        raise ValueError(f"{path} holds parameters only (saved without model=); use load()")
    model = model_from_config(header["model"])
    for i, (layer, p) in enumerate(zip(model.layers, params)):
        shapes = layer.param_shapes()
        got = {k: tuple(v.shape) for k, v in p.items()}
        if got != shapes:
            raise ValueError(f"{path}: params[{i}] of {layer!r} has shapes {got}, expected {shapes}")
    return model, params
