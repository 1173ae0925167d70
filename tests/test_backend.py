"""The array-module switch."""

import logging

import numpy as np
import pytest
from conftest import CUDA, GPU

import xpbp
from xpbp import backend

import strict


def test_cpu_resolves_to_numpy():
    assert backend.resolve("cpu") is np
    assert backend.canonical("cpu") == backend.canonical("cpu:0") == "cpu"
    assert xpbp.get_array_module(np.ones(2)) is np
    assert xpbp.get_array_module([1.0, 2.0]) is np


def test_auto_logs_its_choice(caplog, monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", ImportError("No module named 'cupy'"))
    with caplog.at_level(logging.INFO, logger="xpbp.backend"):
        assert backend.canonical("auto") == "cpu"
        assert backend.resolve("auto") is np
    assert "device 'auto' chose cpu, since CuPy could not be imported" in caplog.text


def test_auto_picks_cuda_when_cuda_is_usable(monkeypatch, caplog):
    monkeypatch.setattr(backend._BACKENDS["cuda"], "count", lambda: 2)
    with caplog.at_level(logging.INFO, logger="xpbp.backend"):
        assert backend.canonical("auto") == "cuda:0"
    assert "device 'auto' chose cuda:0" in caplog.text


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:-1", "cpu:1", "CUDA", ""])
def test_unknown_devices(device):
    with pytest.raises(ValueError, match="unknown device"):
        backend.canonical(device)


def test_transfers_round_trip(device):
    a = np.arange(6.0).reshape(2, 3)
    d = xpbp.to_device(a, device)
    assert backend.device_of(d) == backend.canonical(device)
    assert xpbp.to_device(d, device) is d  # already there: no copy
    h = xpbp.to_numpy(d)
    assert isinstance(h, np.ndarray) and np.array_equal(h, a)
    assert isinstance(xpbp.to_device([[1, 2]], device), type(d))


@pytest.mark.parametrize("_", [pytest.param(None, marks=GPU)])
def test_cuda_backend_is_cupy(_):
    import cupy

    assert backend.resolve("cuda") is cupy
    assert backend.canonical("auto") == "cuda:0"
    a = xpbp.to_device(np.ones(3), "cuda:0")
    assert isinstance(a, cupy.ndarray) and xpbp.get_array_module(a) is cupy
    with pytest.raises(RuntimeError, match="does not exist"):
        backend.canonical(f"cuda:{backend._BACKENDS['cuda'].count()}")


@pytest.mark.skipif(CUDA, reason="checks the error where no CUDA device is usable")
def test_cuda_error_without_gpu():
    with pytest.raises(RuntimeError, match="CUDA was asked for"):
        backend.resolve("cuda")


def test_fused_operations_run_their_own_array_code_as_one_kernel(ledger, rng):
    """A fused operation is written once, as array code: NumPy runs it ufunc by ufunc, the
    strict device (like CuPy) as one logged "kernel" launch of that same code. Training
    both ways from one seed gives the same bits."""
    X = rng.standard_normal((60, 5)).astype(np.float32)
    y = rng.integers(3, size=60)
    nets = [xpbp.Network([5, 7, 4, 3], device=device, seed=2) for device in ("cpu", "strict")]
    for net in nets:
        net.fit(X, y, epochs=2, batch_size=8, eta=0.5, lmbda=0.3, momentum=0.7, progress=False)
    assert set(ledger.kernels) == {"xpbp_sigmoid", "xpbp_sigmoid_prime", "xpbp_momentum"}
    assert ledger.kernels.count("xpbp_momentum") == 2 * 8  # one per step: 8 mini-batches an epoch
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        assert np.array_equal(xpbp.to_numpy(a), xpbp.to_numpy(b))


def test_fused_operation_is_plain_array_code(ledger):
    calls = []

    @backend.fuse
    def _axpy(xp, a, x, y):
        calls.append(xp)
        y += a * x

    y = np.ones(3)
    _axpy(np.arange(3.0), np.full(3, 2.0), y)
    assert calls == [np] and y.tolist() == [1.0, 3.0, 5.0] and _axpy.name == "xpbp_axpy"
    d = xpbp.to_device(np.ones(3), "strict")
    _axpy(xpbp.to_device(np.arange(3.0), "strict"), xpbp.to_device(np.full(3, 2.0), "strict"), d)
    assert calls[1] is strict.XP and xpbp.to_numpy(d).tolist() == [1.0, 3.0, 5.0]
    assert ledger.kernels == ["xpbp_axpy"]


def test_a_fused_operation_looks_at_every_argument_for_its_device(ledger):
    @backend.fuse
    def _axpy(xp, a, x, y):
        y += a * x

    on = {d: xpbp.to_device(np.ones(3), d) for d in ("strict:0", "strict:1")}
    with pytest.raises(ValueError, match=r"xpbp_axpy: its arrays live on different devices \(cpu, strict:0\)"):
        _axpy(on["strict:0"], np.ones(3), on["strict:0"])  # a host array after a device one
    with pytest.raises(ValueError, match=r"different devices \(strict:0, strict:1\)"):
        _axpy(on["strict:0"], on["strict:1"], on["strict:1"])
    with pytest.raises(Exception, match="mixed into device arithmetic"):  # a device array after a host one refuses
        _axpy(np.ones(3), on["strict:0"], np.ones(3))
    assert ledger.kernels == []  # nothing launched
    with backend.using("strict:1"):
        _axpy(2.0, on["strict:1"], on["strict:1"])  # a Python number is no device's
    assert xpbp.to_numpy(on["strict:1"]).tolist() == [3.0, 3.0, 3.0] and ledger.kernels == ["xpbp_axpy"]


@pytest.mark.parametrize("_", [pytest.param(None, marks=GPU)])
def test_fused_operation_is_one_cupy_kernel_on_cuda(_):
    import cupy

    z = np.linspace(-30, 30, 101)
    for dtype in (np.float32, np.float64):
        a = cupy.empty(z.shape, dtype)
        xpbp.activations.Sigmoid().fn(cupy.asarray(z, dtype), out=a)
        np.testing.assert_allclose(cupy.asnumpy(a), 1 / (1 + np.exp(-z)), rtol=4 * np.finfo(dtype).eps, atol=0)
    kernel = backend._BACKENDS["cuda"]._kernels[xpbp.activations._sigmoid]
    assert isinstance(kernel, cupy._core.fusion.Fusion)


def test_cuda_device_indices_are_checked(monkeypatch):
    monkeypatch.setattr(backend, "cupy", object())  # importable, for the check's sake
    monkeypatch.setattr(backend._BACKENDS["cuda"], "count", lambda: 2)
    backend._BACKENDS["cuda"].check(1)
    with pytest.raises(RuntimeError, match="device 'cuda:2' does not exist: this machine has 2 CUDA device"):
        backend._BACKENDS["cuda"].check(2)
