"""xpbp: backpropagation exactly as Nielsen states it (BP1–BP4), vectorized over
mini-batches, on NumPy (CPU) or CuPy (CUDA GPU) through one array-module switch."""

from importlib.metadata import PackageNotFoundError, version

from .backend import get_array_module, to_device, to_numpy
from .network import Network, load
from .runs import DeviceMemoryError, DivergenceError, History

try:
    __version__ = version("xpbp")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "DeviceMemoryError",
    "DivergenceError",
    "History",
    "Network",
    "get_array_module",
    "load",
    "to_device",
    "to_numpy",
    "__version__",
]
