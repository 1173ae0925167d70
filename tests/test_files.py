"""save/load: round trips across devices, atomic writes, and clear errors for bad files."""

import io
import os
import re
import stat
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CUDA

import xpbp
from xpbp import files, to_numpy


def host(net):
    return [to_numpy(p).copy() for p in net.weights + net.biases]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(device, dtype, tmp_path, rng):
    net = xpbp.Network([5, 4, 3], activation="tanh", output_activation="softmax", cost="log_likelihood",
                       dtype=dtype, device=device, seed=11)
    path = tmp_path / "model.npz"
    net.save(path)
    back = xpbp.load(path, device=device)
    assert (back.sizes, back.activation, back.output_activation, back.cost_name, back.dtype, back.device, back.seed) == (
        net.sizes, net.activation, net.output_activation, net.cost_name, net.dtype, net.device, net.seed)
    for a, b in zip(host(net), host(back)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    X = rng.standard_normal((7, 5))
    assert np.array_equal(net.predict(X), back.predict(X))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left behind


def test_load_draws_no_parameters_and_blames_a_bad_device_on_the_caller(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    xpbp.Network([5, 4, 3], seed=1).save(path)

    def no_draw(*args):
        raise AssertionError("load drew random parameters that the file's would replace")

    monkeypatch.setattr(np.random, "default_rng", no_draw)
    assert xpbp.load(path, device="cpu").sizes == [5, 4, 3]
    with pytest.raises(ValueError, match="unknown device 'gpu'") as error:
        xpbp.load(path, device="gpu")
    assert "damaged" not in str(error.value)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CuPy and a CUDA device")
def test_gpu_model_loads_on_cpu_and_back(tmp_path):
    net = xpbp.Network([5, 4, 3], device="cuda", seed=1)
    net.save(tmp_path / "gpu.npz")
    cpu = xpbp.load(tmp_path / "gpu.npz", device="cpu")
    assert cpu.device == "cpu" and isinstance(cpu.weights[0], np.ndarray)
    cpu.save(tmp_path / "cpu.npz")
    gpu = xpbp.load(tmp_path / "cpu.npz", device="cuda")
    assert gpu.device.startswith("cuda:")
    for a, b in zip(host(net), host(gpu)):
        assert np.array_equal(a, b)


def test_to_moves_parameters(device):
    net = xpbp.Network([3, 2], device="cpu", seed=0)
    before = host(net)
    assert net.to(device) is net
    assert all(xpbp.backend.device_of(p) == net.device for p in net.weights + net.biases)
    assert all(np.array_equal(a, b) for a, b in zip(before, host(net.to("cpu"))))


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    xpbp.Network([3, 2], device="cpu", seed=1).save(path)
    good = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        xpbp.Network([3, 2], device="cpu", seed=2).save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


@pytest.mark.parametrize("existing", [True, False])
def test_a_full_disk_names_the_file_and_what_became_of_the_old_one(tmp_path, monkeypatch, existing):
    import errno

    path = tmp_path / "model.npz"
    if existing:
        xpbp.Network([3, 2], device="cpu", seed=1).save(path)
    good = path.read_bytes() if existing else None
    real_fsync = os.fsync

    def full(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    kept = "the file there before is intact" if existing else "nothing was written there"
    with pytest.raises(OSError, match=rf"cannot save to .*model.npz: No space left on device; {kept}") as e:
        xpbp.Network([3, 2], device="cpu", seed=2).save(path)
    assert e.value.errno == errno.ENOSPC
    assert (path.read_bytes() if existing else path.exists()) == (good if existing else False)
    assert [p.name for p in tmp_path.iterdir()] == (["model.npz"] if existing else [])


def _npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_bad_files_raise_clear_errors(tmp_path):
    good = tmp_path / "good.npz"
    xpbp.Network([3, 4, 2], device="cpu", seed=1).save(good)
    data = dict(np.load(good))

    (tmp_path / "text.npz").write_text("not a model")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _npz(tmp_path / "foreign.npz", a=np.arange(3))
    _npz(tmp_path / "future.npz", **{**data, "version": np.array(99)})
    _npz(tmp_path / "missing.npz", **{k: v for k, v in data.items() if k != "w1"})
    _npz(tmp_path / "shape.npz", **{**data, "w0": np.zeros((5, 5))})
    _npz(tmp_path / "names.npz", **{**data, "cost": np.array("hinge")})
    cases = {
        "text.npz": "not a valid xpbp model file",
        "truncated.npz": "not a valid xpbp model file",
        "foreign.npz": "not an xpbp model file",
        "future.npz": "version 99",
        "missing.npz": "'w1' is missing",
        "shape.npz": r"w0 has shape \(5, 5\), expected \(4, 3\)",
        "names.npz": "cost must be one of",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            xpbp.load(tmp_path / name, device="cpu")
    with pytest.raises(FileNotFoundError):
        xpbp.load(tmp_path / "absent.npz", device="cpu")


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "pickled.npz"
    good = tmp_path / "good.npz"
    xpbp.Network([3, 2], device="cpu", seed=1).save(good)
    data = dict(np.load(good))
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as z:
        for k, v in {**data, "w0": None}.items():
            if v is None:
                z.writestr("w0.npy", buf.getvalue())
            else:
                b = io.BytesIO()
                np.save(b, v)
                z.writestr(f"{k}.npy", b.getvalue())
    with pytest.raises(ValueError, match="not a valid xpbp model file"):
        xpbp.load(path, device="cpu")


def test_flipped_byte_is_caught(tmp_path):
    """The archive's CRC-32 catches silent corruption of a stored array."""
    path = tmp_path / "model.npz"
    xpbp.Network([30, 20, 2], device="cpu", seed=1).save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a valid xpbp model file|damaged"):
        xpbp.load(path, device="cpu")


def test_non_finite_parameters_are_refused(tmp_path):
    good = tmp_path / "good.npz"
    xpbp.Network([3, 2], device="cpu", seed=1).save(good)
    data = dict(np.load(good))
    data["w0"] = np.full_like(data["w0"], np.nan)
    _npz(tmp_path / "nan.npz", **data)
    with pytest.raises(ValueError, match="w0 is not finite floating-point data"):
        xpbp.load(tmp_path / "nan.npz", device="cpu")


def test_network_pickles(device, rng):
    import pickle

    net = xpbp.Network([4, 3, 2], device=device, seed=5)
    back = pickle.loads(pickle.dumps(net))
    assert back.device == net.device and back.seed == net.seed
    X = rng.standard_normal((5, 4))
    assert np.array_equal(back.predict(X), net.predict(X))
    assert all(np.array_equal(a, b) for a, b in zip(host(net), host(back)))


def finished_pid():
    """The process id of a process that has ended."""
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(p.stdout)


def test_only_orphans_of_ended_xpbp_writers_are_removed(tmp_path):
    """The next save of a file removes the temporary files that xpbp writers on this host
    left when they were killed, and nothing else: not a running writer's, not a file
    xpbp did not name, not another target's."""
    path = tmp_path / "model.npz"
    dead, alive = finished_pid(), os.getppid()
    orphan = tmp_path / f".model.npz.xpbp-{files._HOST}-{files._NAMESPACE}-{dead}-0123abcd.tmp"
    keep = [tmp_path / f".model.npz.xpbp-{files._HOST}-{files._NAMESPACE}-{alive}-0123abcd.tmp",  # a writer still running
            tmp_path / f".model.npz.xpbp-otherhost-{files._NAMESPACE}-{dead}-0123abcd.tmp",  # a writer on another machine
            tmp_path / f".model.npz.xpbp-{files._HOST}-1-{dead}-0123abcd.tmp",  # in another PID namespace
            tmp_path / f".model.npz.xpbp-{files._HOST}-{files._NAMESPACE}-99999999999999999999-0123abcd.tmp",  # no pid
            tmp_path / ".model.npz.backup.tmp", tmp_path / ".model.npz.abc123.tmp",  # not xpbp's names
            tmp_path / f".other.npz.xpbp-{files._HOST}-{files._NAMESPACE}-{dead}-0123abcd.tmp"]  # another file's
    for f in [orphan, *keep]:
        f.write_bytes(b"half a file")
    xpbp.Network([3, 2], device="cpu", seed=1).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, *(f.name for f in keep)])


def test_a_save_never_replaces_what_is_not_a_regular_file(tmp_path):
    net = xpbp.Network([3, 2], device="cpu", seed=1)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError, match="is a FIFO, not a regular file"):
        net.save(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        net.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        net.save(tmp_path / "absent" / "m.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_a_save_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.npz"
    xpbp.Network([3, 2], device="cpu", seed=1).save(target)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    xpbp.Network([3, 2], device="cpu", seed=2).save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert xpbp.load(target, device="cpu").seed == 2
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["model.npz"]


def test_a_save_keeps_the_permissions_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "model.npz"
    old = os.umask(0o022)
    try:
        xpbp.Network([3, 2], device="cpu", seed=1).save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a new file: what the umask allows
        path.chmod(0o664)
        xpbp.Network([3, 2], device="cpu", seed=2).save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
    finally:
        os.umask(old)


CONCURRENT = """
import sys, xpbp
net = xpbp.Network([20, 10, 3], device="cpu", seed=int(sys.argv[2]))
for _ in range(100):
    net.save(sys.argv[1])
"""


def test_concurrent_writers_of_one_file_never_fail(tmp_path):
    path = tmp_path / "model.npz"
    writers = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(path), str(seed)], stderr=subprocess.PIPE, text=True)
               for seed in (1, 2)]
    for w in writers:
        assert w.wait(timeout=600) == 0, w.stderr.read()
        w.stderr.close()
    assert xpbp.load(path, device="cpu").seed in (1, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def _model_with(path, **changes):
    good = path.parent / "good.npz"
    xpbp.Network([3, 4, 2], device="cpu", seed=1).save(good)
    _npz(path, **{**dict(np.load(good)), **changes})


def test_a_narrowing_cast_that_overflows_is_refused(tmp_path):
    _model_with(tmp_path / "big.npz", w0=np.full((4, 3), 1e39))
    with pytest.raises(ValueError, match="w0 holds values beyond the range of float32"):
        xpbp.load(tmp_path / "big.npz", device="cpu")


def _peak_bytes(call):
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_crafted_archives_cost_no_more_than_a_valid_file(tmp_path):
    """Members are checked from the archive's directory and each array's header before
    any data is decompressed or read: a compression bomb, a header declaring a terabyte,
    and a hundred thousand members are refused using a few megabytes at most."""
    bomb = tmp_path / "bomb.npz"
    _model_with(bomb)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_BZIP2) as z:
        z.writestr("w9.npy", b"\0" * (64 << 20))  # 64 MiB of zeros in a few hundred bytes
    huge = tmp_path / "huge.npz"
    terabyte = (1 << 20, 1 << 19)  # 2**39 float64 values: 4 TiB declared, 0 bytes stored
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": terabyte})
    with zipfile.ZipFile(huge, "w") as z:
        good = {k: v for k, v in np.load(tmp_path / "good.npz").items() if k not in ("w1", "b1")}
        for k, v in {**good, "sizes": np.array([1 << 19, 1 << 20])}.items():
            b = io.BytesIO()
            np.save(b, v)
            z.writestr(f"{k}.npy", header.getvalue() if k == "w0" else b.getvalue())
    many = tmp_path / "many.npz"
    with zipfile.ZipFile(many, "w") as z:
        for i in range(100_000):
            z.writestr(f"a{i}.npy", b"")
    cases = {bomb: "members an xpbp file does not: 'w9'", huge: r"w0 holds \d+ bytes of data for shape \(1048576, 524288\)",
             many: "far more than any xpbp file has"}
    for path, message in cases.items():
        def load(path=path, message=message):
            with pytest.raises(ValueError, match=message):
                xpbp.load(path, device="cpu")
        assert _peak_bytes(load) < 8 << 20, path.name


def test_files_of_other_kinds_get_messages_that_say_so(tmp_path):
    np.save(tmp_path / "weights.npy", np.zeros(3))
    (tmp_path / "notes.txt").write_text("not a model\n")
    for name in ("weights.npy", "notes.txt"):
        with pytest.raises(ValueError, match=f"{name} is not a valid xpbp model file .*not a readable .npz archive"):
            xpbp.load(tmp_path / name, device="cpu")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="fifo is not a regular file"):
        xpbp.load(tmp_path / "fifo", device="cpu")


def test_the_data_reaches_the_disk_before_the_rename(tmp_path, monkeypatch):
    """A crash right after the rename must find the new file whole: the temporary file is
    flushed and fsync'ed before os.replace puts it in place, then the directory is synced."""
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode))) or fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", Path(b).name)) or replace(a, b))
    xpbp.Network([3, 2], device="cpu", seed=1).save(tmp_path / "model.npz")
    assert events == [("fsync", False), ("replace", "model.npz"), ("fsync", True)]


def _with_central_entry(path, member, change):
    """Rewrite ``member``'s entry in the archive's central directory with ``change(entry)``."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + length] == name:
            change(data, at)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 46)
    raise AssertionError(f"{member} not found")


def test_crafted_zip_entries_give_value_errors_naming_the_file(tmp_path):
    """An encrypted flag, a zip version from the future, a lying member count: each is a
    ValueError naming the file, never zipfile's own exceptions."""
    encrypted, future, lying = tmp_path / "encrypted.npz", tmp_path / "future.npz", tmp_path / "lying.npz"
    for path in (encrypted, future, lying):
        xpbp.Network([3, 4, 2], device="cpu", seed=1).save(path)
    _with_central_entry(encrypted, "w0.npy", lambda d, at: d.__setitem__(at + 8, d[at + 8] | 1))
    _with_central_entry(future, "w0.npy", lambda d, at: d.__setitem__(slice(at + 6, at + 8), (99).to_bytes(2, "little")))
    data = bytearray(lying.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 12 : end + 16] = (10**8).to_bytes(4, "little")  # a directory of 100 MB, in a file of 3 KB
    lying.write_bytes(bytes(data))
    for path, message in ((encrypted, "w0 is corrupt or unreadable"), (future, "zip file version 9.9"),
                          (lying, "directory declares 13 members in 100000000 bytes")):
        with pytest.raises(ValueError, match=message) as error:
            xpbp.load(path, device="cpu")
        assert str(path) in str(error.value)


def test_paths_a_save_cannot_use_are_named(tmp_path):
    net = xpbp.Network([3, 2], device="cpu", seed=1)
    with pytest.raises(IsADirectoryError, match="ends with /"):
        net.save(str(tmp_path / "new.npz") + "/")
    long = tmp_path / ("m" * 240 + ".npz")  # a long name leaves no room for a temporary one beside it
    net.save(long)
    assert xpbp.load(long, device="cpu").seed == 1 and [p.name for p in tmp_path.iterdir()] == [long.name]


def test_another_users_file_in_a_sticky_directory_is_refused(tmp_path, monkeypatch):
    """In a directory like /tmp (sticky bit), only a file's owner may replace it: a save
    by another user is refused before anything is written, the file left as it was."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    theirs = shared / "m.npz"
    theirs.write_bytes(b"their model")
    owner = os.stat(theirs).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 12345)  # neither the file's nor the directory's owner, nor root
    with pytest.raises(PermissionError, match="another user's file, in a directory where only its owner may replace it"):
        xpbp.Network([3, 2], device="cpu", seed=1).save(theirs)
    assert theirs.read_bytes() == b"their model" and [p.name for p in shared.iterdir()] == ["m.npz"]
    shared.chmod(0o777)  # without the sticky bit, anyone who may write the directory may replace the file
    xpbp.Network([3, 2], device="cpu", seed=1).save(theirs)
    assert xpbp.load(theirs, device="cpu").seed == 1


def test_a_model_remembers_what_it_was_trained_on_and_older_files_still_load(tmp_path):
    net = xpbp.Network([3, 2], device="cpu", seed=1)
    net.trained_on = "mnist-sample:train"
    net.save(tmp_path / "m.npz")
    assert xpbp.load(tmp_path / "m.npz", device="cpu").trained_on == "mnist-sample:train"
    older = {k: v for k, v in np.load(tmp_path / "m.npz").items() if k != "trained_on"}
    _npz(tmp_path / "v1.npz", **{**older, "version": np.array(1)})  # as xpbp 0.1 wrote them
    back = xpbp.load(tmp_path / "v1.npz", device="cpu")
    assert back.trained_on is None and np.array_equal(back.weights[0], net.weights[0])
    _npz(tmp_path / "v0.npz", **{**older, "version": np.array(0)})
    with pytest.raises(ValueError, match=r"version 0 \(written by an older xpbp\); this xpbp reads version 1 or 2"):
        xpbp.load(tmp_path / "v0.npz", device="cpu")


def test_an_archive_of_exactly_the_most_members_opens(tmp_path):
    path = tmp_path / "many.npz"
    np.savez(path, **{f"a{i}": np.zeros(1) for i in range(files._MAX_MEMBERS)})
    with files.Archive(path, "test archive") as archive:
        assert len(archive.names) == files._MAX_MEMBERS


def _as_zip64(path, count=None, offset=None):
    """The archive at `path` rewritten with a ZIP64 end record (and its locator) before the
    classic one, declaring `count` members (default: the true count), as zipfile reads them;
    the locator gives the record's `offset` (default: where it is)."""
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    entries = int.from_bytes(data[end + 10 : end + 12], "little")
    size, offset = (int.from_bytes(data[end + k : end + k + 4], "little") for k in (12, 16))
    record = (b"PK\x06\x06" + (44).to_bytes(8, "little") + (45).to_bytes(2, "little") * 2 + bytes(8)
              + entries.to_bytes(8, "little") + (entries if count is None else count).to_bytes(8, "little")
              + size.to_bytes(8, "little") + offset.to_bytes(8, "little"))
    locator = b"PK\x06\x07" + bytes(4) + (end if offset is None else offset).to_bytes(8, "little") + (1).to_bytes(4, "little")
    classic = bytearray(data[end:])
    classic[8:12] = b"\xff\xff\xff\xff"  # the counts deferred to the ZIP64 record
    path.write_bytes(bytes(data[:end]) + record + locator + bytes(classic))


def test_a_zip64_end_record_is_held_to_the_member_cap(tmp_path):
    honest, lying = tmp_path / "honest.npz", tmp_path / "lying.npz"
    for path in (honest, lying):
        xpbp.Network([3, 4, 2], device="cpu", seed=1).save(path)
    _as_zip64(honest)
    assert xpbp.load(honest, device="cpu").seed == 1  # a true ZIP64 record, as large files carry, is read
    _as_zip64(lying, count=1_000_000)
    with pytest.raises(ValueError, match=r"lying.npz is not a valid .*declares 1000000 members"):
        xpbp.load(lying, device="cpu")
    xpbp.Network([3, 4, 2], device="cpu", seed=1).save(lying)
    _as_zip64(lying, count=1_000_000, offset=0)  # a locator pointing elsewhere: zipfile reads the record before it
    with pytest.raises(ValueError, match=r"declares 1000000 members"):
        xpbp.load(lying, device="cpu")


@pytest.mark.parametrize("denied, name", [(os.W_OK, "write"), (os.X_OK, "search")])
def test_a_directory_one_may_not_write_or_enter_is_refused_before_any_write(tmp_path, monkeypatch, denied, name):
    """Tests run as root, whom permission bits do not stop: the check is asked of os.access,
    here made to deny one permission of the directory ({name})."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if mode & denied and Path(p) == tmp_path else real(p, mode, **k))
    with pytest.raises(PermissionError, match=rf"cannot save to .*m.npz: the directory {re.escape(str(tmp_path))} is not writable"):
        xpbp.Network([3, 2], device="cpu", seed=1).save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []
