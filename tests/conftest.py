"""Shared fixtures: every numerical test runs once per device.

- ``cpu``: NumPy.
- ``strict``: NumPy behind CuPy's wall (``tests/strict.py``): implicit host conversions
  raise and every transfer is counted, so the GPU code path is exercised without a GPU.
- ``cuda``: CuPy; carries the ``gpu`` marker and skips cleanly where CuPy or a CUDA
  device is missing (run only those with ``pytest -m gpu``).
"""

import numpy as np
import pytest

from xpbp import backend

import strict

backend._BACKENDS["strict"] = strict.StrictBackend()

CUDA = backend.cuda_available()
GPU = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs CuPy and a CUDA device")]
DEVICES = ["cpu", "strict", pytest.param("cuda", marks=GPU)]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def ledger():
    """The strict device's record of host/device crossings, emptied for the test."""
    strict.LEDGER.reset()
    yield strict.LEDGER
    strict.LEDGER.reset()
