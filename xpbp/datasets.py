"""Data sets: found, fetched, verified and cached; and the IDX reader behind them.

`load(name, split)` gives `(X, y)`: X float32 in [0, 1] of shape `(N, 784)`, y
int64 labels of shape `(N,)`. Names:

- `"mnist-sample"`: the real MNIST test split (10,000 digits) embedded in the package;
  `"train"` is its first 8,000 digits and `"test"` the other 2,000.
- `"mnist"` and `"fashion-mnist"`: the full data sets, 60,000 training and 10,000
  test images of 28×28 each, in LeCun's IDX format.

The files of a full data set are looked for, in order, in `data_dir`, in
`$XPBP_DATA/<name>/`, in the cache `~/.cache/xpbp/<name>/` (`$XDG_CACHE_HOME`
is honoured), and for Fashion-MNIST in `/usr/share/datasets/fashion-mnist/` (the
Debian package `dataset-fashion-mnist`); each may be gzip-compressed (`.gz`) or not.
Missing files are downloaded, when `download` is true, from the base URL of the data
set (or `$XPBP_DATA_URL`) into a temporary file, checked against the SHA-256 of its
decompressed contents, and only then renamed into the cache. Every file is checked
against that SHA-256 each time it is read.

`read(path, target=...)` reads a data file of the user's own instead (CSV, `.npz` or
Parquet; `xpbp.tables.read`).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import stat
import sys
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from . import downloads
from .tables import read

__all__ = ["CLASSES", "DatasetError", "FEATURES", "NAMES", "load", "load_idx", "overlap", "parse_idx", "read", "size"]


class DatasetError(RuntimeError):
    """A data set's files are missing, could not be fetched, or are not the right files."""


@dataclass(frozen=True)
class _Spec:
    """Where a data set's files come from and what they must be."""

    url: str
    files: dict[str, tuple[str, str]]  # "train-images" -> (file name, SHA-256 of the decompressed file)
    sizes: dict[str, int]  # split -> number of examples
    system_dirs: tuple[str, ...] = ()

    def nbytes(self, key: str) -> int:
        """The size of a decompressed file: an IDX header, then one byte per pixel or label."""
        n = self.sizes[key.split("-")[0]]
        return 16 + n * math.prod(_IMAGE_SHAPE) if key.endswith("images") else 8 + n


_IMAGE_SHAPE = (28, 28)
# Decompressed SHA-256 of the published files.
_DATASETS = {
    "mnist": _Spec(
        url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        files={
            "train-images": ("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            "train-labels": ("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            "test-images": ("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            "test-labels": ("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        },
        sizes={"train": 60000, "test": 10000},
    ),
    "fashion-mnist": _Spec(
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files={
            "train-images": ("train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            "train-labels": ("train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            "test-images": ("t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            "test-labels": ("t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        },
        sizes={"train": 60000, "test": 10000},
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
}
# The embedded sample: MNIST's test files, split 8,000 / 2,000.
_SAMPLE = "mnist-sample"
_SAMPLE_TRAIN = 8000
NAMES = (_SAMPLE, *_DATASETS)
FEATURES, CLASSES = 784, 10  # every data set here: 28×28 pixels, ten classes

# IDX type codes (the third byte of the magic number) and the dtypes they store, big-endian.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# The most an IDX file that is not one of a known data set's may hold, decompressed.
MAX_IDX_BYTES = 1 << 31
# A download's limits: the whole transfer, and the wait for any one read.
DOWNLOAD_DEADLINE, DOWNLOAD_STALL = 600.0, 60.0


# ---------------------------------------------------------------------- IDX


def _gzip_bound(nbytes: int) -> int:
    """The most a gzip file of `nbytes` of data can take (stored blocks: 5 bytes per 64 KiB, plus headers)."""
    return nbytes + nbytes // 1000 + 1024


def _decompress(raw: bytes, source: str, limit: int) -> bytes:
    """`raw` itself, or its gzip contents, refused beyond `limit` bytes: a gzip bomb
    stops at the limit instead of filling the memory."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = stream.decompress(raw, limit + 1)
    except zlib.error as e:
        raise ValueError(f"{source}: corrupt gzip data ({e})") from None
    if len(data) > limit:
        raise ValueError(f"{source}: decompresses to more than the {limit} bytes it may hold")
    if not stream.eof:
        raise ValueError(f"{source}: corrupt or truncated gzip data (the stream ends early)")
    return data


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes: a magic number 0x0000TTDD (type T, D dimensions), D big-endian
    uint32 sizes, then the body. Raises `ValueError` naming what is wrong."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise ValueError(f"{source} is not an IDX file: bad magic number {data[:4].hex() or '(empty)'}")
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    if ndim > 32:
        raise ValueError(f"{source}: an IDX file of {ndim} dimensions; xpbp reads up to 32")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{source}: truncated IDX header ({len(data)} bytes, expected {header})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + dtype.itemsize * math.prod(shape)  # Python integers: no overflow
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{source}: IDX body {what}: {len(data)} bytes for shape {shape}, expected {expected}")
    try:
        return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
    except ValueError as e:  # a shape NumPy cannot hold, such as one of size 0 with huge other sizes
        raise ValueError(f"{source}: IDX shape {shape}: {e}") from None


def load_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array; files holding more
    than `max_bytes`, compressed or not, are refused before they are read whole."""
    return parse_idx(_read(Path(path), max_bytes), str(path))


def _read(path: Path, limit: int) -> bytes:
    """The contents of the regular file `path`, decompressed, of at most `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put there does not block
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"{path} is not a regular file")
            raw = f.read(_gzip_bound(limit) + 1)
    except OSError as e:
        raise ValueError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) > _gzip_bound(limit):
        raise ValueError(f"{path}: larger than the {limit} bytes it may hold")
    return _decompress(raw, str(path), limit)


def _verified(data: bytes, source: str, sha256: str) -> bytes:
    """`data`, if its SHA-256 is `sha256`."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"{source} is corrupt or not the expected file: SHA-256 of its contents is {digest}, expected {sha256}")
    return data


# ---------------------------------------------------------------------- finding and fetching


def cache_dir(name: str) -> Path:
    """`~/.cache/xpbp/<name>` (under `$XDG_CACHE_HOME` when set)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "xpbp" / name


def _search_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    dirs = [Path(data_dir)] if data_dir is not None else []
    if os.environ.get("XPBP_DATA"):
        dirs.append(Path(os.environ["XPBP_DATA"]) / name)
    dirs.append(cache_dir(name))
    return dirs + [Path(d) for d in _DATASETS[name].system_dirs]


def _find(filename: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for candidate in (d / filename, d / f"{filename}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _by_hand(name: str, filenames: list[str], dirs: list[Path]) -> str:
    wanted = ", ".join(f"{f}.gz" for f in filenames)
    return (
        f"To place the files by hand, put {wanted} (gzip-compressed or not) into {cache_dir(name)}, "
        f"or into a directory given as data_dir=... (CLI: --data-dir) or as $XPBP_DATA/{name}; "
        f"looked in: {', '.join(map(str, dirs))}. Or set XPBP_DATA_URL to a mirror."
    )


def _read_file(name: str, key: str, data_dir: str | os.PathLike | None, download: bool, progress: bool) -> np.ndarray:
    spec = _DATASETS[name]
    filename, sha256 = spec.files[key]
    dirs = _search_dirs(name, data_dir)
    path = _find(filename, dirs)
    if path is None:
        if not download:
            raise DatasetError(f"{name}: {filename} not found and download=False. {_by_hand(name, [filename], dirs)}")
        base = os.environ.get("XPBP_DATA_URL") or spec.url
        url = f"{base.rstrip('/')}/{filename}.gz"
        path = cache_dir(name) / f"{filename}.gz"
        try:
            downloads.fetch(
                url,
                path,
                limit=_gzip_bound(spec.nbytes(key)),
                deadline=DOWNLOAD_DEADLINE,
                stall=DOWNLOAD_STALL,
                verify=lambda tmp: _verified(_read(tmp, spec.nbytes(key)), url, sha256),
                progress=progress,
            )
        except downloads.FAILURES as e:
            raise DatasetError(
                f"{name}: could not download {url}: {downloads.reason(e)}. Nothing was saved. {_by_hand(name, [filename], dirs)}"
            ) from None
    try:
        return parse_idx(_verified(_read(path, spec.nbytes(key)), str(path), sha256), str(path))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{name}: {e}. Delete or replace that file. {_by_hand(name, [filename], dirs)}") from None


@functools.lru_cache(maxsize=1)
def _sample_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The embedded images and labels, verified and parsed once per process (read-only)."""
    arrays = []
    for key in ("test-images", "test-labels"):
        filename, sha256 = _DATASETS["mnist"].files[key]
        resource = resources.files("xpbp") / "data" / f"{filename}.gz"
        try:
            source = f"embedded {filename}.gz"
            data = _verified(_decompress(resource.read_bytes(), source, _DATASETS["mnist"].nbytes(key)), source, sha256)
        except ValueError as e:
            raise DatasetError(f"{e}; reinstall xpbp") from None
        array = parse_idx(data, filename)
        array.flags.writeable = False
        arrays.append(array)
    return arrays[0], arrays[1]


def _sample(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _sample_arrays()
    part = slice(None, _SAMPLE_TRAIN) if split == "train" else slice(_SAMPLE_TRAIN, None)
    return images[part], labels[part]


def size(name: str, split: str) -> int:
    """How many examples `load(name, split)` gives, known without loading them."""
    _check(name, split)
    _, _, start, stop = _source(name, split)
    return stop - start


def _source(name: str, split: str) -> tuple[str, str, int, int]:
    """Where a split's examples come from: the published data set, its split, and the
    range of its examples (the embedded sample is MNIST's test split)."""
    if name == _SAMPLE:
        return ("mnist", "test", 0, _SAMPLE_TRAIN) if split == "train" else ("mnist", "test", _SAMPLE_TRAIN, 10000)
    return (name, split, 0, _DATASETS[name].sizes[split])


def overlap(trained_on: str | None, name: str, split: str) -> int:
    """How many of the examples of `name`'s `split` are among those of `trained_on`
    (`"<data set>:<split>"`, as a model file records it); 0 when that is not known."""
    _check(name, split)
    theirs = (trained_on or "").split(":")
    if len(theirs) != 2 or theirs[0] not in NAMES or theirs[1] not in ("train", "test"):
        return 0
    a, b = _source(*theirs), _source(name, split)
    return max(0, min(a[3], b[3]) - max(a[2], b[2])) if a[:2] == b[:2] else 0


def _check(name: str, split: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown data set {name!r}: expected one of {', '.join(map(repr, NAMES))}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def load(
    name: str = _SAMPLE,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`(X, y)` of a data set's split: X float32 in [0, 1] of shape `(N, 784)`, y int64
    labels `(N,)`. Raises `DatasetError` when the files cannot be had, saying how
    to place them by hand. `progress`: a progress bar while downloading (None: when
    stderr is a terminal)."""
    _check(name, split)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DatasetError(f"{name}: data_dir {data_dir} does not exist or is not a directory")
    if name == _SAMPLE:
        images, labels = _sample(split)
    else:
        progress = sys.stderr.isatty() if progress is None else progress
        images = _read_file(name, f"{split}-images", data_dir, download, progress)
        labels = _read_file(name, f"{split}-labels", data_dir, download, progress)
        n = _DATASETS[name].sizes[split]
        if images.shape != (n, *_IMAGE_SHAPE) or labels.shape != (n,):
            raise DatasetError(
                f"{name} {split}: images of shape {images.shape} and labels of shape {labels.shape}, "
                f"expected {(n, *_IMAGE_SHAPE)} and {(n,)}"
            )
    if len(images) != len(labels):
        raise DatasetError(f"{name} {split}: {len(images)} images but {len(labels)} labels")
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    return X, labels.astype(np.int64)
