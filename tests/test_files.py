"""save/load: round trips across devices, atomic writes, and clear errors for bad files."""

import io
import zipfile

import numpy as np
import pytest

import xpbp
from xpbp import to_numpy

from conftest import CUDA


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


def test_orphaned_temporary_files_are_cleaned_up(tmp_path):
    """A writer killed mid-save leaves its temporary file; the next save removes it."""
    path = tmp_path / "model.npz"
    (tmp_path / ".model.npz.abc123.tmp").write_bytes(b"half a file")
    (tmp_path / ".other.npz.abc123.tmp").write_bytes(b"someone else's")
    xpbp.Network([3, 2], device="cpu", seed=1).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.npz.abc123.tmp", "model.npz"]
