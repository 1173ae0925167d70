"""The array-module switch."""

import logging

import numpy as np
import pytest

import xpbp
from xpbp import backend

from conftest import CUDA, GPU


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
    assert "device 'auto' chose cpu: CuPy could not be imported" in caplog.text


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


def test_fused_kernels_compute_what_the_array_code_computes(ledger, rng):
    """NumPy has no fused kernels, so the CPU runs each operation's array code; the strict
    device, like CuPy, runs the kernels (interpreted there). Training both ways from one
    seed must give the same bits: the kernels and the array code they replace agree."""
    X = rng.standard_normal((60, 5)).astype(np.float32)
    y = rng.integers(3, size=60)
    assert xpbp.activations.Sigmoid._fn.on(np.zeros(1)) is None
    nets = [xpbp.Network([5, 7, 4, 3], device=device, seed=2) for device in ("cpu", "strict")]
    for net in nets:
        net.fit(X, y, epochs=2, batch_size=8, eta=0.5, lmbda=0.3, momentum=0.7, progress=False)
    assert set(ledger.kernels) == {"xpbp_sigmoid", "xpbp_sigmoid_prime", "xpbp_momentum"}
    assert ledger.kernels.count("xpbp_momentum") == 2 * 8  # one per step: 8 mini-batches an epoch
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        assert np.array_equal(xpbp.to_numpy(a), xpbp.to_numpy(b))


def test_strict_kernels_refuse_what_they_cannot_interpret():
    from xpbp.backend import Elementwise

    import strict

    with pytest.raises(ValueError, match="cannot interpret"):
        strict.StrictKernel(Elementwise("T x", "T y", "if (x > 0) y = x", "branchy"))
    with pytest.raises(ValueError, match="cannot interpret"):
        strict.StrictKernel(Elementwise("T x", "T y", "x = y", "writes_an_input"))
    kernel = strict.StrictKernel(Elementwise("T x, T c", "T y", "y = c * x", "scale"))
    with pytest.raises(TypeError, match="2 inputs"):
        kernel(xpbp.to_device(np.ones(2), "strict"))
