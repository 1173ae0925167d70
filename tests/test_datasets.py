"""Data sets: the IDX reader, the embedded sample, finding files, and downloading them
from an HTTP server on 127.0.0.1 that serves files the test wrote."""

import dataclasses
import gzip
import hashlib
import http.server
import socket
import subprocess
import sys
import threading
import tracemalloc
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from xpbp import datasets, files

FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(datasets._IDX_TYPES[type_code]).tobytes()


# ---------------------------------------------------------------------- the IDX reader


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("type_code", [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])
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
        (idx(np.zeros((4, 3)))[:-1], r"truncated: 23 bytes for shape \(4, 3\), expected 24"),
        (idx(np.zeros((4, 3))) + b"\x00", "trailing bytes"),
        (gzip.compress(idx(np.zeros((4, 3))))[:-8], "corrupt or truncated gzip data"),
    ],
)
def test_idx_errors(tmp_path, data, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        datasets.load_idx(path)
    with pytest.raises(ValueError, match="cannot read IDX file"):
        datasets.load_idx(tmp_path / "absent.idx")


# ---------------------------------------------------------------------- the embedded sample


def test_sample_splits():
    X, y = datasets.load("mnist-sample", "train")
    Xt, yt = datasets.load("mnist-sample", "test")
    assert X.shape == (8000, 784) and Xt.shape == (2000, 784)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 == X.min() and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10)) == set(np.unique(yt))
    assert 0.1 < X.mean() < 0.2  # ink covers about an eighth of a digit's box


def test_sample_matches_the_shared_checksums():
    """The embedded files are the ones whose SHA-256 the shared data's SHA256SUMS lists."""
    from importlib import resources

    sums = {"t10k-images-idx3-ubyte.gz": "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b",
            "t10k-labels-idx1-ubyte.gz": "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c"}
    for name, sha in sums.items():
        assert hashlib.sha256((resources.files("xpbp") / "data" / name).read_bytes()).hexdigest() == sha


def test_corrupt_sample_is_refused(monkeypatch):
    datasets._sample_arrays.cache_clear()
    monkeypatch.setitem(datasets._DATASETS["mnist"].files, "test-labels", ("t10k-labels-idx1-ubyte", "0" * 64))
    with pytest.raises(datasets.DatasetError, match="t10k-labels-idx1-ubyte.gz is corrupt.*reinstall xpbp"):
        datasets.load("mnist-sample")


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        datasets.load("cifar")
    with pytest.raises(ValueError, match="split must be"):
        datasets.load("mnist-sample", "validation")


# ---------------------------------------------------------------------- finding and downloading


N = {"train": 6, "test": 4}


@pytest.fixture
def fake(tmp_path, monkeypatch, rng):
    """A small stand-in for MNIST: files written here, their checksums swapped into the
    data set's spec, the cache and environment pointed into tmp_path."""
    served = tmp_path / "served"
    served.mkdir()
    files, contents = {}, {}
    for split, n in N.items():
        stem = "train" if split == "train" else "t10k"
        images = idx(rng.integers(0, 256, (n, 28, 28)))
        labels = idx(rng.integers(0, 10, n))
        for kind, data, name in (("images", images, f"{stem}-images-idx3-ubyte"), ("labels", labels, f"{stem}-labels-idx1-ubyte")):
            files[f"{split}-{kind}"] = (name, hashlib.sha256(data).hexdigest())
            contents[name] = data
            (served / f"{name}.gz").write_bytes(gzip.compress(data))
    spec = datasets._Spec(url="http://127.0.0.1:9/unused/", files=files, sizes=N)
    monkeypatch.setitem(datasets._DATASETS, "mnist", spec)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("XPBP_DATA", raising=False)
    monkeypatch.delenv("XPBP_DATA_URL", raising=False)
    return served, contents


@pytest.fixture
def server(fake):
    """An HTTP server on 127.0.0.1 serving the fake data set's directory."""
    served, _ = fake
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def cached(tmp_path):
    root = tmp_path / "cache" / "xpbp" / "mnist"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_verifies_and_caches(fake, server, tmp_path, monkeypatch):
    monkeypatch.setenv("XPBP_DATA_URL", server)
    X, y = datasets.load("mnist", "train")
    assert X.shape == (6, 784) and y.shape == (6,) and X.dtype == np.float32 and y.dtype == np.int64
    assert cached(tmp_path) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    monkeypatch.setenv("XPBP_DATA_URL", "http://127.0.0.1:9/")  # nothing listens there: the cache must serve
    X2, _ = datasets.load("mnist", "train")
    assert np.array_equal(X, X2)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing", "HTTP Error 404"),
        ("corrupt", "corrupt or not the expected file"),
        ("truncated", "corrupt or truncated gzip data"),
        ("other file", "corrupt or not the expected file|more than the [0-9]+ this file can take"),
    ],
)
def test_failed_download_leaves_nothing(fake, server, tmp_path, monkeypatch, damage, message):
    served, contents = fake
    target = served / "t10k-images-idx3-ubyte.gz"
    good = target.read_bytes()
    if damage == "missing":
        target.unlink()
    elif damage == "corrupt":
        target.write_bytes(gzip.compress(contents["t10k-images-idx3-ubyte"][:-1] + b"\x01"))
    elif damage == "truncated":
        target.write_bytes(good[: len(good) // 2])
    else:
        target.write_bytes(gzip.compress(contents["train-images-idx3-ubyte"]))
    monkeypatch.setenv("XPBP_DATA_URL", server)
    with pytest.raises(datasets.DatasetError, match=message) as error:
        datasets.load("mnist", "test")
    text = str(error.value)
    assert "Nothing was saved" in text and "put t10k-images-idx3-ubyte.gz" in text and "XPBP_DATA_URL" in text
    assert cached(tmp_path) == []


def test_truncated_transfer_is_refused(fake, tmp_path, monkeypatch):
    """A server that promises more bytes than it sends."""

    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + b"\x00" * 100)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("XPBP_DATA_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
        with pytest.raises(datasets.DatasetError, match="could not download .*download truncated: got 102 of 1000 bytes"):
            datasets.load("mnist", "test")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert cached(tmp_path) == []


def test_search_order_and_no_download(fake, tmp_path, monkeypatch):
    served, contents = fake
    with pytest.raises(datasets.DatasetError, match="not found and download=False.*looked in"):
        datasets.load("mnist", "test", download=False)
    # $XPBP_DATA/<name>/ holds raw (decompressed) files
    env = tmp_path / "env" / "mnist"
    env.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (env / name).write_bytes(contents[name])
    monkeypatch.setenv("XPBP_DATA", str(tmp_path / "env"))
    X, _ = datasets.load("mnist", "test", download=False)
    assert X.shape == (4, 784)
    # data_dir comes first: a wrong file there is reported, not skipped
    first = tmp_path / "first"
    first.mkdir()
    (first / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(contents["train-images-idx3-ubyte"]))
    with pytest.raises(datasets.DatasetError, match=f"{first}.*(corrupt or not the expected file|larger than the [0-9]+ bytes it may hold).*Delete or replace"):
        datasets.load("mnist", "test", data_dir=first, download=False)


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs the Debian package dataset-fashion-mnist (.ci/run installs it)")
def test_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("XPBP_DATA", raising=False)
    for split, n in (("train", 60000), ("test", 10000)):
        X, y = datasets.load("fashion-mnist", split, download=False)
        assert X.shape == (n, 784) and y.shape == (n,)
        assert np.array_equal(np.bincount(y), np.full(10, n // 10))  # balanced: n/10 of each class
        assert 0.0 <= X.min() and X.max() <= 1.0


# ---------------------------------------------------------------------- hostile servers and files


class _Serve(http.server.BaseHTTPRequestHandler):
    """Answers every GET with what ``body(handler)`` writes; no Content-Length."""

    body = None

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        try:
            type(self).body(self)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile(fake, monkeypatch):
    """Start a server whose answer ``body`` gives; returns a function that does so."""
    servers = []

    def start(body):
        handler = type("Handler", (_Serve,), {"body": staticmethod(body)})
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        monkeypatch.setenv("XPBP_DATA_URL", f"http://127.0.0.1:{httpd.server_address[1]}")

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_a_server_that_never_stops_sending_is_cut_off(hostile, tmp_path):
    def endless(handler):
        while True:
            handler.wfile.write(b"\x1f\x8b" + b"\x00" * 65534)

    hostile(endless)
    with pytest.raises(datasets.DatasetError, match=r"sent more than the \d+ bytes this file can take"):
        datasets.load("mnist", "test")
    assert cached(tmp_path) == []


def test_a_server_that_trickles_meets_the_deadline(hostile, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DOWNLOAD_DEADLINE", 1.0)
    stop = threading.Event()

    def trickle(handler):
        while not stop.wait(0.2):
            handler.wfile.write(b"\x1f")
            handler.wfile.flush()

    hostile(trickle)
    try:
        with pytest.raises(datasets.DatasetError, match="took longer than 1 s"):
            datasets.load("mnist", "test")
    finally:
        stop.set()
    assert cached(tmp_path) == []


def _gzip_bomb(nbytes):
    """A gzip stream of ``nbytes`` zeros, made a megabyte at a time."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(z.compress(block) for _ in range(nbytes >> 20)) + z.flush()


def test_gzip_bombs_are_refused_within_the_files_size(fake, hostile, tmp_path, monkeypatch):
    """256 MiB of zeros in 250 KB, from a mirror and from a data directory, where MNIST's
    7.8 MB test images belong: refused as soon as it outgrows that size, in a few
    megabytes of memory."""
    spec = datasets._DATASETS["mnist"]
    monkeypatch.setitem(datasets._DATASETS, "mnist", dataclasses.replace(spec, sizes={**spec.sizes, "test": 10000}))
    bomb = _gzip_bomb(256 << 20)
    hostile(lambda handler: handler.wfile.write(bomb))
    here = tmp_path / "dir"
    here.mkdir()
    (here / "t10k-images-idx3-ubyte.gz").write_bytes(bomb)
    for data_dir in (None, here):
        tracemalloc.start()
        try:
            with pytest.raises(datasets.DatasetError, match="decompresses to more than the 7840016 bytes"):
                datasets.load("mnist", "test", data_dir=data_dir)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 32 << 20
    assert cached(tmp_path) == []
    with pytest.raises(ValueError, match="decompresses to more than the 1000000 bytes"):
        datasets.load_idx(here / "t10k-images-idx3-ubyte.gz", max_bytes=10**6)


def test_idx_header_arithmetic_cannot_overflow(tmp_path):
    header = bytes([0, 0, 0x08, 4]) + (65536).to_bytes(4, "big") * 4  # 2**64 bytes: np.prod would wrap to 0
    path = tmp_path / "huge.idx"
    path.write_bytes(header)
    with pytest.raises(ValueError, match=r"truncated: 20 bytes for shape \(65536, 65536, 65536, 65536\), expected 18446744073709551636"):
        datasets.load_idx(path)


def test_downloads_killed_earlier_leave_no_part_files(fake, server, tmp_path, monkeypatch):
    """A download killed half-way (SIGKILL) leaves its .part file; the next download of
    that file removes it, and leaves other files alone."""
    cache = tmp_path / "cache" / "xpbp" / "mnist"
    cache.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    orphan = cache / f".t10k-images-idx3-ubyte.gz.xpbp-{files._HOST}-{files._NAMESPACE}-{dead}-0123abcd.part"
    orphan.write_bytes(b"half")
    (cache / "notes.part").write_bytes(b"mine")
    monkeypatch.setenv("XPBP_DATA_URL", server)
    datasets.load("mnist", "test")
    assert cached(tmp_path) == ["notes.part", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_a_data_dir_that_does_not_exist_is_an_error(fake, tmp_path):
    with pytest.raises(datasets.DatasetError, match="data_dir .*absent does not exist"):
        datasets.load("mnist", "test", data_dir=tmp_path / "absent")


@pytest.fixture
def raw_server(fake, monkeypatch):
    """A TCP server on 127.0.0.1 whose every connection ``talk(connection)`` answers."""
    servers = []

    def start(talk):
        listener = socket.create_server(("127.0.0.1", 0))
        stop = threading.Event()

        def serve():
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except OSError:
                    continue
                threading.Thread(target=_talk, args=(talk, connection, stop), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        servers.append((listener, stop))
        monkeypatch.setenv("XPBP_DATA_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
        return stop

    yield start
    for listener, stop in servers:
        stop.set()
        listener.close()


def _talk(talk, connection, stop):
    with connection:
        try:
            talk(connection, stop)
        except OSError:
            pass


def test_a_server_that_does_not_speak_http_is_a_dataset_error(raw_server, tmp_path):
    raw_server(lambda c, stop: c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n"))
    with pytest.raises(datasets.DatasetError, match="could not download .*Nothing was saved"):
        datasets.load("mnist", "test")
    assert cached(tmp_path) == []


def test_the_deadline_covers_a_server_that_trickles_its_headers(raw_server, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DOWNLOAD_DEADLINE", 1.0)

    def headers_forever(c, stop):
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\n")
        while not stop.wait(0.2):
            c.sendall(b"X")  # a header line that never ends

    stopping = raw_server(headers_forever)
    try:
        with pytest.raises(datasets.DatasetError, match="took longer than 1 s"):
            datasets.load("mnist", "test")
    finally:
        stopping.set()
    assert cached(tmp_path) == []


@pytest.mark.parametrize("trained_on, name, split, shared", [
    ("mnist-sample:train", "mnist", "test", 8000), ("mnist-sample:test", "mnist", "test", 2000),
    ("mnist-sample:train", "mnist-sample", "train", 8000), ("mnist-sample:train", "mnist-sample", "test", 0),
    ("mnist:train", "mnist", "test", 0), ("mnist:test", "mnist-sample", "test", 2000),
    ("fashion-mnist:train", "mnist", "train", 0), (None, "mnist", "test", 0), ("something else", "mnist", "test", 0)])
def test_what_a_model_has_seen_of_a_split(trained_on, name, split, shared):
    """mnist-sample is MNIST's test split, 8,000 digits to train on and 2,000 to test."""
    assert datasets.overlap(trained_on, name, split) == shared
