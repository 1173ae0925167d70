"""Fetching a file over HTTP(S), with limits a hostile or broken server cannot get past.

`fetch` writes the response into a temporary file beside its destination and
renames it into place only once the caller's check of its contents passes, so that a
failed download leaves nothing behind. A transfer may take at most a given number of
bytes (with or without a Content-Length) and a deadline for the whole of it — the
connection and the response's headers included: a watchdog shuts the socket when the
deadline passes, wherever the transfer stands — and no more than a stall between any
two reads. Temporary files of downloads that were killed are removed by the next.
"""

from __future__ import annotations

import contextvars
import http.client
import os
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import files

__all__ = ["FAILURES", "fetch", "reason"]

# What a failed download raises: refused or broken connections and HTTP errors (OSError,
# URLError), broken or hostile responses (http.client's), and the limits below (ValueError).
FAILURES = (OSError, ValueError, urllib.error.URLError, http.client.HTTPException)

# The sockets of the downloads of this context, for their watchdogs to shut.
_SOCKETS: contextvars.ContextVar[list[socket.socket]] = contextvars.ContextVar("xpbp_download_sockets")


class _Watched(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _SOCKETS.get([]).append(self.sock)


class _WatchedSecure(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _SOCKETS.get([]).append(self.sock)


class _Http(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_Watched, req)


class _Https(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_WatchedSecure, req, context=self._context)  # type: ignore[attr-defined]


def fetch(
    url: str,
    destination: Path,
    *,
    limit: int,
    deadline: float,
    stall: float,
    verify: Callable[[Path], Any],
    progress: bool = False,
) -> None:
    """Download `url` to `destination`: at most `limit` bytes, `deadline` seconds in
    all and `stall` seconds between reads; `verify(path)` must accept the temporary
    file before it is renamed into place. Raises one of `FAILURES`, and leaves
    nothing behind, when any of that fails."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    files.sweep(destination, ".part")
    fd, tmp = files.temporary(destination, ".part")
    sockets: list[socket.socket] = []
    fired = threading.Event()
    token = _SOCKETS.set(sockets)
    watchdog = threading.Timer(deadline, _shut, (sockets, fired))
    watchdog.start()
    try:
        with os.fdopen(fd, "wb") as f:
            _transfer(url, f, limit, stall, destination.name, progress)
        if fired.is_set():
            raise ValueError(f"the download took longer than {deadline:g} s")
        verify(tmp)
        os.replace(tmp, destination)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, urllib.error.HTTPError):
            e.close()  # an HTTP error response holds its connection open until closed
        if fired.is_set() and isinstance(e, FAILURES):
            raise ValueError(f"the download took longer than {deadline:g} s") from None
        raise
    finally:
        watchdog.cancel()
        _SOCKETS.reset(token)


def reason(e: BaseException) -> str:
    """What went wrong, in one line: http.client's errors carry the server's raw words."""
    if isinstance(e, http.client.HTTPException):
        return f"the server's answer is not HTTP ({type(e).__name__}: {str(e)[:80]!r})"
    return " ".join(str(e).split())


def _shut(sockets: list[socket.socket], fired: threading.Event) -> None:
    """The deadline has passed: make every read of the download fail at once."""
    fired.set()
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _transfer(url: str, f: Any, limit: int, stall: float, name: str, progress: bool) -> None:
    opener = urllib.request.build_opener(_Http, _Https)
    with opener.open(url, timeout=stall) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total is not None and total > limit:
            raise ValueError(f"the server offers {total} bytes, more than the {limit} this file can take")
        with tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False, disable=not progress) as bar:
            while chunk := response.read1(1 << 16):  # what has arrived, however little
                f.write(chunk)
                bar.update(len(chunk))
                if f.tell() > limit:
                    raise ValueError(f"the server sent more than the {limit} bytes this file can take")
        if total is not None and f.tell() != total:
            raise ValueError(f"download truncated: got {f.tell()} of {total} bytes")
        f.flush()
        os.fsync(f.fileno())
