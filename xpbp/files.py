"""Files written atomically and archives read without trusting them.

**Writing.** `write` puts an `.npz` archive where `path` names it without ever
leaving a half-written file there: it writes a temporary file in the same directory,
flushes it to disk, and renames it over the target. The target must be a regular file
or not exist yet (a FIFO, a device or a directory is refused, untouched); through a
symbolic link, the file the link points to is replaced and the link kept; an existing
file keeps its permission bits, a new one gets those the umask allows. Temporary
files are named `.<name>.xpbp-<host>-<pid namespace>-<pid>-<random><suffix>` (a
SHA-256 of the name stands for a name over 150 characters), so that a writer
killed half-way (SIGKILL cannot be caught) can be told from one still running: the
next write of the same file deletes the temporary files of writers on this host whose
process is gone, and nothing else. `replacing` does the same for any file written
in one go (predictions, ONNX models); `temporary` and `sweep` serve the
data-set downloads the same way.

**Reading.** `Archive` opens an `.npz` archive and reads one member at a time,
checking the member's name, its storage and the shape and type its header declares
against what the caller expects *before* reading its data, so that a crafted file
(a compression bomb, a header declaring a terabyte, thousands of members) costs no
more memory or time than a valid file of the expected layer sizes. It never
unpickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import secrets
import socket
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["Archive", "replacing", "sweep", "temporary", "writable", "write"]

_MAX_MEMBERS = 4096  # far above what any xpbp file holds (2 per layer, and a few dozen more)
_MAX_DIRECTORY = _MAX_MEMBERS * 160  # bytes of the archive's directory: 46 a member, its name, its extras
_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:32] or "host"


def _namespace() -> str:
    """This process's PID namespace (Linux), so that a writer in a container sharing the
    host's name and a volume is not taken for a dead one here."""
    try:
        return re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or "0"
    except OSError:
        return "0"


_NAMESPACE = _namespace()


def writable(path: str | os.PathLike) -> Path:
    """The regular file a write to `path` replaces or creates: `path` itself, or the
    file its symbolic links lead to. Raises `OSError` naming the problem when the
    directory does not exist or cannot be written, or when the target exists and is
    not a regular file or cannot be replaced; nothing is touched."""
    text = os.fspath(path)
    if text in ("", "."):
        raise FileNotFoundError("cannot save to an empty path: give a file name")
    if text.endswith(os.sep):
        raise IsADirectoryError(f"cannot save to {text}: it names a directory (it ends with {os.sep}); give a file name")
    target = Path(os.path.realpath(path))
    try:
        found = os.stat(target)
    except FileNotFoundError:
        found = None
    if found is not None and not stat.S_ISREG(found.st_mode):
        if stat.S_ISDIR(found.st_mode):
            raise IsADirectoryError(f"cannot save to {text}: it is a directory; give a file name")
        kind = "a FIFO" if stat.S_ISFIFO(found.st_mode) else "a socket" if stat.S_ISSOCK(found.st_mode) else "a device file"
        raise FileExistsError(f"cannot save to {text}: it is {kind}, not a regular file; xpbp replaces only regular files")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot save to {text}: no such directory {target.parent}")
    folder = os.stat(target.parent)
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot save to {text}: the directory {target.parent} is not writable")
    if found is not None and folder.st_mode & stat.S_ISVTX and os.geteuid() not in (0, found.st_uid, folder.st_uid):
        raise PermissionError(f"cannot save to {text}: another user's file, in a directory where only its owner may replace it")
    return target


def _prefix(target: Path) -> str:
    """The start of the names of `target`'s temporary files: the file's own name, or a
    digest of it when it is too long to take the rest of a temporary name."""
    name = target.name if len(target.name) <= 150 else hashlib.sha256(target.name.encode(errors="surrogateescape")).hexdigest()
    return f".{name}.xpbp-{_HOST}-{_NAMESPACE}-"


def temporary(target: Path, suffix: str) -> tuple[int, Path]:
    """A new temporary file beside `target`, open for writing: `(fd, path)`. Its mode
    is what the umask allows of 0666 (`os.open`'s rule), not `mkstemp`'s 0600."""
    while True:
        name = f"{_prefix(target)}{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(target.parent / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), target.parent / name
        except FileExistsError:
            continue


def sweep(target: Path, suffix: str) -> None:
    """Delete the temporary files of `target` left by xpbp writers on this host, in this
    process namespace, whose process no longer runs. Other writers' files, and files
    xpbp did not name, stay."""
    pattern = re.compile(rf"{re.escape(_prefix(target))}(\d{{1,10}})-[0-9a-f]{{8}}{re.escape(suffix)}")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and int(match[1]) != os.getpid() and not _running(int(match[1])):
            (target.parent / name).unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process; or a number that is no process id: not to be touched
    return True


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """A binary file to write that takes the place of `path` when the block ends without
    an error, atomically (see the module's text); after an error, `path` is as it was."""
    target = writable(path)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = temporary(target, ".tmp")
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                if mode is not None:
                    os.fchmod(f.fileno(), mode)
                yield f
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # a full disk, a quota, an I/O error: say which file, and that nothing was lost
            kept = "the file there before is intact" if mode is not None else "nothing was written there"
            text = f"cannot save to {os.fspath(path)}: {e.strerror or e}; {kept}"
            raise (OSError(e.errno, text) if e.errno is not None else OSError(text)) from None
        try:
            os.replace(tmp, target)
        except PermissionError as e:
            raise PermissionError(f"cannot save to {os.fspath(path)}: {e.strerror} (replacing {target})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sweep(target, ".tmp")
    _sync_directory(target.parent)


def write(path: str | os.PathLike, format: str, version: int, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` with their format marker to `path`, atomically (see the module's text)."""
    with replacing(path) as f:
        members: dict[str, Any] = {"format": np.array(format), "version": np.array(version), **arrays}
        np.savez(f, **members)


def _sync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data itself is on disk
    finally:
        os.close(dir_fd)


class _Refused(ValueError):
    """A file found not to be what it should be; the message names it and says why."""


class Archive:
    """An `.npz` archive open for checked reading; use it in a `with` block.

    Every problem raises `ValueError` naming the file and `what` it should be
    (`OSError` for a file that cannot be opened at all)."""

    def __init__(self, path: str | os.PathLike, what: str) -> None:
        self.path, self.what = Path(path), what
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put here does not block the open
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValueError(f"{path} is not a regular file, so not an {what}")
        self._file: IO[bytes] = os.fdopen(fd, "rb")
        self._zip: zipfile.ZipFile | None = None
        try:
            self._size = os.fstat(fd).st_size
            self._directory()
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
            if any(not i.filename.endswith(".npy") or i.filename.count("/") for i in infos):
                raise self.error("it holds members that are not arrays (.npy)")
            self.names = {i.filename[:-4] for i in infos}
            if len(self.names) != len(infos):
                raise self.error("it holds two members of one name")
        except _Refused:
            self.close()
            raise
        except _UNREADABLE as e:
            self.close()
            raise ValueError(f"{path} is not a valid {what} (not a readable .npz archive: {e})") from None
        except BaseException:
            self.close()
            raise

    def _directory(self) -> None:
        """Refuse an archive whose end record declares more members, or a larger
        directory, than any xpbp file has: read before zipfile parses the directory."""
        tail = min(self._size, 22 + 65535)
        self._file.seek(self._size - tail)
        data = self._file.read(tail)
        at = data.rfind(b"PK\x05\x06")
        if at < 0 or len(data) - at < 22:
            raise zipfile.BadZipFile("no end-of-archive record; a .npy file or a text file is not an .npz archive")
        count = int.from_bytes(data[at + 10 : at + 12], "little")
        size = int.from_bytes(data[at + 12 : at + 16], "little")
        if at >= 20 and data[at - 20 : at - 16] == b"PK\x06\x07":  # a ZIP64 locator: zipfile reads its record
            count, size = self._zip64(self._size - tail + at - 20, data[at - 12 : at - 4]) or (count, size)
        if count > _MAX_MEMBERS or size > _MAX_DIRECTORY:
            raise self.error(f"its directory declares {count} members in {size} bytes, far more than any xpbp file has")

    def _zip64(self, locator: int, offset: bytes) -> tuple[int, int] | None:
        """The largest member count and directory size declared by a ZIP64 end record
        (which then stand for the classic record's), looked for where zipfile's versions
        look: just before the locator, and at the offset the locator gives; None if none."""
        found = None
        for at in (locator - 56, int.from_bytes(offset, "little")):
            if 0 <= at <= self._size - 56:
                self._file.seek(at)
                record = self._file.read(56)
                if record[:4] == b"PK\x06\x06":
                    declared = int.from_bytes(record[32:40], "little"), int.from_bytes(record[40:48], "little")
                    found = declared if found is None else (max(found[0], declared[0]), max(found[1], declared[1]))
        return found

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        self._file.close()

    @property
    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            raise ValueError(f"{self.path}: the archive is closed")
        return self._zip

    def error(self, problem: str) -> ValueError:
        return _Refused(f"{self.path} is not a valid {self.what}: {problem}")

    def only(self, allowed: set[str]) -> None:
        """Refuse members other than `allowed`."""
        unknown = sorted(self.names - allowed)
        if unknown:
            shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise self.error(f"it holds members an xpbp file does not: {shown}")

    def _header(self, name: str, f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
        """The shape, order and dtype a member's .npy header declares."""
        try:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}[version]
            return read(f)
        except (ValueError, KeyError, EOFError) as e:
            raise self.error(f"{name} has no valid array header ({e})") from None

    def scalar(self, name: str, kinds: str) -> Any:
        """Member `name`: one value (an array of shape `()`), as a Python number or str."""
        return self.array(name, kinds, ()).item()

    def array(self, name: str, kinds: str, shape: tuple[int, ...] | None = None, longest: int = 1) -> np.ndarray:
        """Member `name`: an array whose dtype kind is in `kinds` (`"f"`, `"iu"`,
        `"U"`, `"b"`), of exactly `shape`, or when it is None, of at most one
        dimension and `longest` elements. Checked from its header before its data is read."""
        if name not in self.names:
            raise self.error(f"{name!r} is missing")
        info = self._open.getinfo(f"{name}.npy")
        if (
            info.compress_type != zipfile.ZIP_STORED
            or info.compress_size != info.file_size
            or info.header_offset + info.file_size > self._size
        ):
            raise self.error(f"{name} is not stored as xpbp stores arrays (uncompressed, within the file)")
        try:
            with self._open.open(info) as f:
                found, fortran, dtype = self._header(name, f)
                if dtype.hasobject or dtype.kind not in kinds or (dtype.kind == "U" and dtype.itemsize > 4 * 256):
                    raise self.error(f"{name} holds {dtype}, not {_KINDS.get(kinds, kinds)}")
                if (shape is not None and found != shape) or (shape is None and (len(found) > 1 or math.prod(found) > longest)):
                    raise self.error(
                        f"{name} has shape {found}, expected {shape if shape is not None else f'at most {longest} values'}"
                    )
                size = math.prod(found) * dtype.itemsize
                if f.tell() + size != info.file_size:
                    raise self.error(f"{name} holds {info.file_size - f.tell()} bytes of data for shape {found} of {dtype}")
                data = f.read(size)
                f.read()  # to the member's end, where its CRC-32 is checked
        except _Refused:
            raise
        except _UNREADABLE as e:
            raise self.error(f"{name} is corrupt or unreadable ({type(e).__name__}: {e})") from None
        return np.frombuffer(data, dtype).reshape(found, order="F" if fortran else "C")


_KINDS = {"f": "floating-point numbers", "iu": "integers", "U": "text", "b": "a boolean", "u": "unsigned integers"}
# What zipfile raises for archives it cannot read: corrupt, truncated or crafted ones
# (encrypted or compressed members, newer zip versions, member data beyond the file).
_UNREADABLE = (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError, UnicodeDecodeError, ValueError)
