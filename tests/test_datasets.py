"""The IDX reader and the embedded MNIST sample."""

import gzip
import hashlib

import numpy as np
import pytest

from xpbp import datasets


def idx(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(datasets._IDX_TYPES[type_code]).tobytes()


def test_sample_splits():
    X, y = datasets.load("mnist-sample", "train")
    Xt, yt = datasets.load("mnist-sample", "test")
    assert X.shape == (8000, 784) and Xt.shape == (2000, 784)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 == X.min() and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10)) == set(np.unique(yt))
    assert 0.1 < X.mean() < 0.2  # ink covers about an eighth of a digit's box


def test_sample_matches_the_shared_checksums():
    """The embedded files are the ones whose SHA-256 the data's own SHA256SUMS lists."""
    from importlib import resources

    sums = {"t10k-images-idx3-ubyte.gz": "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b",
            "t10k-labels-idx1-ubyte.gz": "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c"}
    for name, sha in sums.items():
        assert hashlib.sha256((resources.files("xpbp") / "data" / name).read_bytes()).hexdigest() == sha


def test_corrupt_sample_is_refused(monkeypatch):
    monkeypatch.setitem(datasets._SAMPLE_FILES, "labels", ("t10k-labels-idx1-ubyte.gz", "0" * 64))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        datasets.load("mnist-sample")


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("type_code", [0x08, 0x0B, 0x0C, 0x0D, 0x0E])
def test_idx_round_trip(tmp_path, compress, type_code, rng):
    array = rng.integers(0, 100, (3, 4, 5))
    data = idx(array, type_code)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    got = datasets.load_idx(path)
    assert got.shape == (3, 4, 5) and np.array_equal(got, array) and got.dtype.isnative


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "bad magic number"),
        (b"\x00\x01\x08\x01", "bad magic number"),
        (b"\x00\x00\x07\x01", "bad magic number"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated IDX header"),
        (idx(np.zeros((4, 3)))[:-1], "truncated"),
        (idx(np.zeros((4, 3))) + b"\x00", "trailing bytes"),
    ],
)
def test_idx_errors(tmp_path, data, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        datasets.load_idx(path)


def test_idx_bad_gzip(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(idx(np.zeros((4, 3))))[:-8])
    with pytest.raises(ValueError, match="cannot read IDX file"):
        datasets.load_idx(path)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        datasets.load("cifar")
    with pytest.raises(ValueError, match="split must be"):
        datasets.load("mnist-sample", "validation")
