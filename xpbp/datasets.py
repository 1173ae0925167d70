"""Data sets: an IDX reader and the embedded MNIST sample.

The package embeds the real MNIST test split (10,000 handwritten digits, 28×28, in
LeCun's IDX format, gzip-compressed). ``load("mnist-sample", "train")`` gives its
first 8,000 digits and ``"test"`` the other 2,000, held out.
"""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["load", "load_idx", "NAMES"]

NAMES = ("mnist-sample",)

# SHA-256 of the decompressed IDX files embedded in xpbp/data.
_SAMPLE_FILES = {
    "images": ("t10k-images-idx3-ubyte.gz", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "labels": ("t10k-labels-idx1-ubyte.gz", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
_SAMPLE_TRAIN = 8000

# IDX type codes (the third byte of the magic number) and the dtypes they store, big-endian.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read(path: str | Path) -> bytes:
    """The bytes of ``path``, decompressed if it is gzip."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"cannot read IDX file {path}: {e}") from e


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes: a magic number 0x0000TTDD (type T, D dimensions), D big-endian
    uint32 sizes, then the body. Raises ``ValueError`` naming what is wrong."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise ValueError(f"{source} is not an IDX file: bad magic number {data[:4].hex() or '(empty)'}")
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{source}: truncated IDX header ({len(data)} bytes, expected {header})")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", ndim, offset=4))
    expected = header + dtype.itemsize * int(np.prod(shape))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{source}: IDX body {what}: {len(data)} bytes for shape {shape}, expected {expected}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array."""
    return parse_idx(_read(path), str(path))


def _load_sample() -> tuple[np.ndarray, np.ndarray]:
    arrays = {}
    for kind, (filename, sha256) in _SAMPLE_FILES.items():
        with resources.as_file(resources.files("xpbp") / "data" / filename) as path:
            data = _read(path)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"embedded data file {filename} is corrupt (SHA-256 mismatch); reinstall xpbp")
        arrays[kind] = parse_idx(data, filename)
    images, labels = arrays["images"], arrays["labels"]
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return images, labels


def load(name: str = "mnist-sample", split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: X float32 in [0, 1] of shape ``(N, 784)``, y int64 labels ``(N,)``."""
    if name not in NAMES:
        raise ValueError(f"unknown data set {name!r}: expected one of {', '.join(map(repr, NAMES))}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = _load_sample()
    part = slice(None, _SAMPLE_TRAIN) if split == "train" else slice(_SAMPLE_TRAIN, None)
    X = images[part].reshape(-1, 28 * 28).astype(np.float32) / 255.0
    return X, labels[part].astype(np.int64)
