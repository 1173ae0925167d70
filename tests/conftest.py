"""Shared fixtures: every numerical test runs once per device.

``cpu`` always runs; ``cuda`` carries the ``gpu`` marker and skips cleanly where CuPy
or a CUDA device is missing (run only those with ``pytest -m gpu``).
"""

import numpy as np
import pytest

from xpbp import backend

CUDA = backend.cuda_available()
GPU = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs CuPy and a CUDA device")]
DEVICES = ["cpu", pytest.param("cuda", marks=GPU)]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
