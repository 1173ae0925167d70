"""Versioned ``.npz`` files: written atomically, read without pickle.

Models and checkpoints are NumPy ``.npz`` archives holding a ``format`` name and a
``version`` beside their arrays. A write goes to a temporary file in the same
directory, is flushed to disk, and only then renamed over the target, so a crash or a
full disk never leaves a half-written file where a good one was. A read refuses
anything that is not a readable archive of the expected format and version. A
temporary file orphaned by a writer that was killed (SIGKILL cannot be caught) is
removed by the next successful write of the same file.
"""

from __future__ import annotations

import glob
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["read", "write"]


def write(path: str | os.PathLike, format: str, version: int, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` with their format marker to ``path``, atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, format=np.array(format), version=np.array(version), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a writer that was killed
        stale.unlink(missing_ok=True)
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data itself is on disk
    finally:
        os.close(dir_fd)


def read(path: str | os.PathLike, format: str, version: int, what: str) -> dict[str, np.ndarray]:
    """The arrays of a ``format`` file of ``version``; ``ValueError`` naming the problem
    for anything else (``what`` names the kind of file in messages)."""
    path = Path(path)
    with open(path, "rb") as fh:  # our own handle, closed even when np.load fails half-way
        try:
            with np.load(fh, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is not a valid {what} (not a readable .npz: {e})") from None
    if str(data.get("format", "")) != format:
        raise ValueError(f"{path} is not an {what} (no format {format!r} marker)")
    found = str(data.get("version", "missing"))
    if found != str(version):
        older = " (written by an older xpbp)" if found.isdigit() and int(found) < version else ""
        raise ValueError(f"{path} has {what} format version {found}{older}; this xpbp reads version {version}")
    return data
