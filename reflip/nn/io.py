"""Parameters in ``.npz`` files [NN-13]: array ``"{i}/{name}"`` is ``params[i][name]``, and
``"__model__"`` (when saved) the model's JSON description, so that :func:`load_model` rebuilds
both. Nothing is pickled: files load with ``allow_pickle=False``, always.

Errors [NN-13]: a path that is not a ``str``/``os.PathLike`` raises ``TypeError``; a file that
cannot be opened raises the ``OSError`` of :func:`open` (``FileNotFoundError`` for a missing
file, ``IsADirectoryError``...), the documented kind for "no such file"; a file that opens but is
not a complete, intact reflip parameter file -- empty, truncated, a failed CRC, random bytes, a
``.npy``, a pickle, an archive holding object arrays or other entries -- raises one
``ValueError`` naming the path and what is wrong. NumPy's own advice to retry with
``allow_pickle=True`` is never passed on: loading a pickle executes code from the file.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
import zlib

import numpy as np

from .._backend import get_namespace, to_numpy
from .._validate import check_floating
from .layers import LAYER_TYPES
from .model import Sequential

__all__ = ["save", "load", "load_model", "model_from_config", "MAX_LAYERS"]

_KEY = re.compile(r"^(\d+)/(\w+)$")
_FORMAT = "reflip.nn/1"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"

#: Upper bound of the layer count a file may declare: ``load`` builds one dict per layer, and a
#: corrupted header must not make it allocate without bound. No trained network comes close.
MAX_LAYERS = 100_000


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {path!r} ({type(path).__name__})")
    return os.fspath(path)


def save(path, params, model=None):
    """Write ``params`` (any backend; copied to the host) and, optionally, ``model``'s
    description to ``path`` (``.npz``, uncompressed). Entries are float32/float64 arrays in
    their dtype; nothing else is written (the reader refuses anything else)."""
    path = _check_path(path)
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"params must be a list of dicts of arrays (one per layer), got {type(params).__name__}")
    if model is not None and not isinstance(model, Sequential):
        raise TypeError(f"model must be a reflip.nn.Sequential or None, got {type(model).__name__}")
    arrays = {}
    for i, layer_params in enumerate(params):
        if not isinstance(layer_params, dict):
            raise TypeError(f"params[{i}] must be a dict, got {type(layer_params).__name__}")
        for name, a in layer_params.items():
            where = f"params[{i}][{name!r}]"
            if not isinstance(name, str) or not re.fullmatch(r"\w+", name):
                raise ValueError(f"{where}: parameter names must be identifiers (letters, digits, _)")
            check_floating(a, get_namespace(**{where: a}), where)
            arrays[f"{i}/{name}"] = to_numpy(a)
    header = {"format": _FORMAT, "n_layers": len(params)}
    if model is not None:
        if len(model.layers) != len(params):
            raise ValueError(f"params has {len(params)} entries but model has {len(model.layers)} layers")
        header["model"] = model.config()
    arrays["__model__"] = np.asarray(json.dumps(header))
    np.savez(path, **arrays)


class _Corrupt(Exception):
    """What is wrong with a file, turned into the one ValueError by :func:`_read`."""


def _entry(f, key):
    """One array of the archive, read with ``allow_pickle=False``."""
    try:
        a = f[key]
    except ValueError as exc:
        # NumPy refuses an object array with advice to allow pickles: never passed on.
        if "pickle" in str(exc):
            raise _Corrupt(f"entry {key!r} holds an object array (pickled Python objects), which "
                           f"reflip never loads") from None
        raise _Corrupt(f"entry {key!r} is not a valid .npy array") from None
    if not isinstance(a, np.ndarray):  # NumPy hands back the raw bytes of a member without a .npy header
        raise _Corrupt(f"entry {key!r} is not a valid .npy array")
    return a


def _parse_header(f):
    if "__model__" not in f.files:
        raise _Corrupt("not a reflip.nn parameter file (no '__model__' entry)")
    raw = _entry(f, "__model__")
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise _Corrupt(f"the '__model__' entry must be a JSON string, got an array of dtype {raw.dtype}")
    try:
        header = json.loads(str(raw))
    except ValueError:
        raise _Corrupt("the '__model__' entry is not valid JSON") from None
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise _Corrupt(f"unknown format {got!r}, expected {_FORMAT!r}")
    n = header.get("n_layers")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_LAYERS:
        raise _Corrupt(f"n_layers must be an integer in [0, {MAX_LAYERS}], got {n!r}")
    return header


def _read_archive(f, xp):
    header = _parse_header(f)
    params = [{} for _ in range(header["n_layers"])]
    for key in f.files:
        if key == "__model__":
            continue
        match = _KEY.match(key)
        if match is None or int(match.group(1)) >= len(params):
            raise _Corrupt(f"unexpected entry {key!r}")
        a = _entry(f, key)
        if a.dtype not in (np.float32, np.float64):
            raise _Corrupt(f"entry {key!r} has dtype {a.dtype}; parameters are float32 or float64")
        params[int(match.group(1))][match.group(2)] = a if xp is None else xp.asarray(a)
    return header, params


def _read(path, xp):
    """``(header, params)`` of a file written by :func:`save`: ``ValueError`` naming ``path``
    for anything else [NN-13]."""
    path = _check_path(path)
    with open(path, "rb") as handle:  # FileNotFoundError etc.: the OSError of open
        try:
            magic = handle.read(len(_ZIP_MAGIC))
            if not magic:
                raise _Corrupt("the file is empty")
            if magic != _ZIP_MAGIC:
                kind = (" (a .npy file: one array, no model description)"
                        if _NPY_MAGIC.startswith(magic) else "")
                raise _Corrupt(f"not an .npz archive{kind}: it does not start with a zip header")
            handle.seek(0)
            with np.load(handle, allow_pickle=False) as f:
                if not isinstance(f, np.lib.npyio.NpzFile):
                    raise _Corrupt("not an .npz archive")
                return _read_archive(f, xp)
        except _Corrupt as exc:
            message = str(exc)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError) as exc:
            # A truncated archive (no central directory), a failed CRC, a bad deflate stream...
            # NumPy's messages may advise allow_pickle: replaced, and the chain cut.
            detail = str(exc) if "pickle" not in str(exc) else "unreadable entry"
            message = f"a corrupted or truncated .npz archive ({type(exc).__name__}: {detail})"
    raise ValueError(f"{path}: {message}; expected a parameter file written by reflip.nn.save")


def load(path, xp=None):
    """The parameters saved in ``path``: NumPy arrays, or arrays of ``xp`` (e.g. ``cupy``)."""
    return _read(path, xp)[1]


def model_from_config(config):
    """Rebuild a :class:`Sequential` from :meth:`Sequential.config`."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict (Sequential.config()), got {type(config).__name__}")
    if config.get("type") != "Sequential":
        raise ValueError(f"config: expected a Sequential description, got type {config.get('type')!r}")
    # The model is rebuilt below through the constructors, which validate every value.
    if not isinstance(config.get("layers"), list):
        raise ValueError("config['layers'] must be a list of layer descriptions")
    layers = []
    for i, cfg in enumerate(config["layers"]):
        where = f"config['layers'][{i}]"
        if not isinstance(cfg, dict) or "type" not in cfg:
            raise ValueError(f"{where} must be a dict with a 'type', got {cfg!r}")
        cfg = dict(cfg)
        kind = cfg.pop("type")
        if not isinstance(kind, str) or kind not in LAYER_TYPES:
            raise ValueError(f"{where}: unknown layer type {kind!r}; known: {sorted(LAYER_TYPES)}")
        if not all(isinstance(k, str) for k in cfg):
            raise ValueError(f"{where}: keys must be strings, got {sorted(map(repr, cfg))}")
        try:
            # Keywords throughout: a missing or unknown one is a TypeError naming it.
            layers.append(LAYER_TYPES[kind](**cfg))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where} ({kind}): {exc}") from None
    return Sequential(layers)


def load_model(path, xp=None):
    """``(model, params)`` from a file written by ``save(path, params, model)``. The
    parameters are checked against the model (one dict per layer, the right shapes); a
    description that does not build a model is a corrupted file: ``ValueError`` naming
    ``path`` [NN-13]."""
    header, params = _read(path, xp)
    if "model" not in header:
        raise ValueError(f"{path} holds parameters only (saved without model=); use load()")
    try:
        model = model_from_config(header["model"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path}: the model description does not build a model "
                         f"({type(exc).__name__}: {exc})") from None
    if len(model.layers) != len(params):
        raise ValueError(f"{path}: the model has {len(model.layers)} layers but the file {len(params)} "
                         f"parameter entries")
    for i, (layer, p) in enumerate(zip(model.layers, params, strict=True)):
        shapes = layer.param_shapes()
        got = {k: tuple(v.shape) for k, v in p.items()}
        if got != shapes:
            raise ValueError(f"{path}: params[{i}] of {layer!r} has shapes {got}, expected {shapes}")
    return model, params
