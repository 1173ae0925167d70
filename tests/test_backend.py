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
