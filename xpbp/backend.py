"""The array-module switch: NumPy on the CPU, CuPy on a CUDA GPU.

This is the only module of xpbp that imports `cupy` (but for `xpbp.distributed`,
which imports CuPy's NCCL bindings for its GPU all-reduce). Everything else asks it for
the array module (`xp`) of a device or of an array, moves data across the
host/device boundary only through `to_device` and `to_numpy`, and runs
device work inside `using`, so that it lands on the right GPU.

A device is named `"cpu"`, `"cuda"` (the current GPU), `"cuda:N"` or
`"auto"` (a GPU when one is usable, else the CPU). `canonical` turns any of
them into `"cpu"` or `"cuda:N"`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .blas import info as blas_info  # what the CPU's matrix products run on (xpbp.blas)

try:  # CuPy is optional; keep the reason it failed to show when CUDA is asked for.
    import cupy
except Exception as e:  # ImportError, or a CuPy whose CUDA libraries are broken
    cupy = None
    _cupy_error: Exception | None = e
else:
    _cupy_error = None

__all__ = [
    "Fused",
    "as_array",
    "blas_info",
    "canonical",
    "cuda_available",
    "cuda_info",
    "device_of",
    "elapsed",
    "fuse",
    "get_array_module",
    "resolve",
    "stream",
    "to_device",
    "to_numpy",
    "usable",
    "using",
]

log = logging.getLogger(__name__)

_INSTALL_HINT = (
    "install CuPy for your CUDA toolkit, e.g. pip install cupy-cuda12x (CUDA 12) or cupy-cuda13x (CUDA 13) "
    "(in an xpbp checkout: pip install -e '.[cuda12x]'), or use device='cpu'"
)


@dataclass(frozen=True)
class Fused:
    """An elementwise operation written once, as plain array code `fn(xp, *args)` over
    the array module `xp` of its arguments. Its outputs are arguments too, written in
    place (`xp.exp(z, out=a)`, `a += 1`), so that a call allocates nothing.

    With CuPy arrays it runs as `cupy.fuse` of that code: one kernel, compiled on first
    use for each dtype. With NumPy arrays it is the code itself, one ufunc after another
    (as Chainer's `fuse` falls back to the plain function without CuPy).
    """

    fn: Callable[..., None]

    @property
    def name(self) -> str:
        return "xpbp_" + self.fn.__name__.lstrip("_")

    def __call__(self, *args: Any) -> None:
        if type(args[0]) is np.ndarray:  # the common case, first: NumPy runs the code itself
            self.fn(np, *args)  # (a device array among the rest refuses NumPy's conversion itself)
            return
        places = {(b := _backend_of(a), b.index_of(a)) for a in args if not isinstance(a, (int, float, np.generic))}
        if len(places) > 1:
            shown = ", ".join(sorted(f"{b.name}:{i}" if b.name != "cpu" else "cpu" for b, i in places))
            raise ValueError(f"{self.name}: its arrays live on different devices ({shown}): bring them to one first")
        places.pop()[0].run(self, args)  # on the current device, which must be its arrays' (as CuPy requires)


def fuse(fn: Callable[..., None]) -> Fused:
    """Decorator: the function `fn(xp, *args)` as a `Fused` operation."""
    return Fused(fn)


class Backend:
    """How xpbp talks to one kind of device: its array module and its transfers.

    The CPU backend is NumPy itself. Subclasses override the methods below; the
    network code never asks which backend it has.
    """

    name = "cpu"
    # Bytes of examples an epoch gathers in one call: on the CPU a block that stays in
    # cache for its mini-batches' steps; on a GPU one launch for many mini-batches.
    gather_bytes = 1 << 18
    # Bytes of a hidden layer's z (or δ) that its elementwise work takes a block at a time:
    # on the CPU a block of rows that stays in cache from its first operation to its last;
    # on a GPU none (0), each operation being one kernel over the whole layer.
    block_bytes = 1 << 18

    @property
    def xp(self) -> ModuleType:
        return np

    def check(self, index: int) -> None:
        """Raise a `RuntimeError` naming the cause and the fix if `index` is unusable."""

    def count(self) -> int:
        """How many devices of this kind are usable."""
        return 1

    def current(self) -> int:
        """The index of the current device, for a name without `:N`."""
        return 0

    def using(self, index: int) -> AbstractContextManager[Any]:
        """A context in which device `index` is the current one."""
        return contextlib.nullcontext()

    def owns(self, a: Any) -> bool:
        return isinstance(a, np.ndarray)

    def index_of(self, a: Any) -> int:
        return 0

    def asarray(self, a: Any, index: int) -> Any:
        """`a` as an array on device `index`; no copy when it is already there."""
        return np.asarray(a)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def moved(self, a: Any, index: int) -> Any:
        """A copy on device `index` of an array on another of this backend's devices
        (the host has one device only, so the CPU is never asked)."""
        return self.asarray(self.to_numpy(a), index)

    def run(self, op: Fused, args: tuple[Any, ...]) -> None:
        """Run a fused operation: on NumPy, its array code."""
        op.fn(np, *args)

    def elapsed(self, index: int, work: Callable[[], None]) -> float:
        """Seconds that `work` takes here: on the CPU, by the wall clock."""
        start = time.perf_counter()
        work()
        return time.perf_counter() - start


class CudaBackend(Backend):
    """CuPy on NVIDIA GPUs."""

    name = "cuda"
    gather_bytes = 1 << 26
    block_bytes = 0

    def __init__(self) -> None:
        self._kernels: dict[Fused, Callable[..., None]] = {}
        self._count: int | None = None

    @property
    def xp(self) -> ModuleType:
        self.check(0)
        return cupy

    def count(self) -> int:
        """The CUDA devices this process sees, asked of the runtime once (the set is fixed
        when CUDA initialises), since array-module lookups ask it several times a step."""
        if self._count is None:
            if cupy is None:
                return 0
            try:
                self._count = int(cupy.cuda.runtime.getDeviceCount())
            except cupy.cuda.runtime.CUDARuntimeError:
                self._count = 0
        return self._count

    def check(self, index: int) -> None:
        if cupy is None:
            raise RuntimeError(f"CUDA was asked for but CuPy could not be imported ({_cupy_error}); {_INSTALL_HINT}")
        n = self.count()
        if n == 0:
            raise RuntimeError(
                "CUDA was asked for but CuPy finds no usable CUDA device (no GPU, or no NVIDIA driver); "
                "check `nvidia-smi`, or use device='cpu'"
            )
        if not 0 <= index < n:
            raise RuntimeError(
                f"device 'cuda:{index}' does not exist: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}"
            )

    def current(self) -> int:
        return cupy.cuda.runtime.getDevice() if self.count() else 0

    def using(self, index: int) -> AbstractContextManager[Any]:
        return cupy.cuda.Device(index)

    def owns(self, a: Any) -> bool:
        return cupy is not None and isinstance(a, cupy.ndarray)

    def index_of(self, a: Any) -> int:
        return a.device.id

    def asarray(self, a: Any, index: int) -> Any:
        with cupy.cuda.Device(index):
            return cupy.asarray(a)

    def to_numpy(self, a: Any) -> np.ndarray:
        return cupy.asnumpy(a)

    def moved(self, a: Any, index: int) -> Any:
        with cupy.cuda.Device(index):
            return cupy.copy(a)  # GPU to GPU (peer to peer where the devices allow), never through the host

    def run(self, op: Fused, args: tuple[Any, ...]) -> None:
        kernel = self._kernels.get(op)
        if kernel is None:  # one kernel object per operation; CuPy compiles it once per dtype
            kernel = self._kernels[op] = cupy.fuse(kernel_name=op.name)(functools.partial(op.fn, cupy))
        kernel(*args)

    def elapsed(self, index: int, work: Callable[[], None]) -> float:
        """By a pair of CUDA events around `work` on the current stream: the GPU's time,
        known after the second event is reached (one synchronisation)."""
        with cupy.cuda.Device(index):
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            work()
            end.record()
            end.synchronize()
            return cupy.cuda.get_elapsed_time(start, end) / 1000.0


# Backends by device name. The test suite registers a strict stand-in for CuPy here.
_BACKENDS: dict[str, Backend] = {"cpu": Backend(), "cuda": CudaBackend()}


def _split(device: str) -> tuple[Backend, int]:
    """`"cuda:1"` -> (the CUDA backend, 1); raises `ValueError` for unknown names."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu', 'cuda', 'cuda:0' or 'auto', got {type(device).__name__}")
    kind, colon, index = device.partition(":")
    if kind not in _BACKENDS or (colon and not index.isdigit()) or (kind == "cpu" and index not in ("", "0")):
        names = ", ".join(repr(k) for k in _BACKENDS)
        raise ValueError(f"unknown device {device!r}: expected 'auto' or one of {names}, optionally with ':N' (e.g. 'cuda:0')")
    backend = _BACKENDS[kind]
    return backend, int(index) if index else backend.current()


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return _BACKENDS["cuda"].count() > 0


def canonical(device: str) -> str:
    """Resolve `device` to `"cpu"` or `"kind:N"`, checking that it is usable.

    `"auto"` picks `cuda:0` when `cuda_available`, else `"cpu"`, and logs
    which it chose and why.
    """
    if device == "auto":
        if cuda_available():
            log.info("device 'auto' chose cuda:0")
            return "cuda:0"
        reason = f"CuPy could not be imported ({_cupy_error})" if cupy is None else "CuPy sees no CUDA device"
        log.info("device 'auto' chose cpu, since %s", reason)
        return "cpu"
    backend, index = _split(device)
    backend.check(index)
    return "cpu" if backend.name == "cpu" else f"{backend.name}:{index}"


def usable(device: str, what: str) -> str:
    """`device`, canonical, where it is usable here; else `"cpu"`, with a
    `RuntimeWarning` that says so of `what` (e.g. "a network pickled on")."""
    try:
        return canonical(device)
    except (RuntimeError, ValueError) as e:
        message = f"{what} {device} is loaded on the CPU: that device is not usable here ({e})"
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return "cpu"


def resolve(device: str) -> ModuleType:
    """The array module (NumPy or CuPy) for `device`. It does not make that device
    current: allocate inside `using`."""
    return _split(canonical(device))[0].xp


def elapsed(device: str, work: Callable[[], None]) -> float:
    """Seconds that `work` takes on `device`: CUDA events on a GPU, the wall clock on the CPU."""
    backend, index = _split(device)
    return backend.elapsed(index, work)


def using(device: str) -> AbstractContextManager[Any]:
    """`with using("cuda:1"):` makes that GPU current for the block, so that the arrays,
    kernels and random draws made there land on it (CuPy's `with cupy.cuda.Device(1):`);
    the device current before comes back after. Nothing happens on the CPU. `device`
    must be canonical (see `canonical`)."""
    backend, index = _split(device)
    return backend.using(index)


def stream() -> int:
    """The handle of the current CUDA stream, for libraries that take one (NCCL); 0, the
    default stream, without CuPy."""
    return cupy.cuda.get_current_stream().ptr if cupy is not None else 0


def cuda_info() -> dict[str, Any]:
    """What CuPy sees: `available`, and where it is, the CuPy version, the CUDA runtime
    version and each GPU's name and memory; otherwise the reason it is not."""
    if cupy is None:
        return {"available": False, "reason": f"CuPy could not be imported ({_cupy_error})"}
    info: dict[str, Any] = {"available": False, "cupy": cupy.__version__}
    try:
        runtime = cupy.cuda.runtime.runtimeGetVersion()
        info["cuda_runtime"] = f"{runtime // 1000}.{runtime % 1000 // 10}"
        devices = []
        for i in range(cupy.cuda.runtime.getDeviceCount()):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = props["name"]
            devices.append(
                {
                    "device": f"cuda:{i}",
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
                }
            )
    except cupy.cuda.runtime.CUDARuntimeError as e:
        info["reason"] = f"CUDA runtime error: {e}"
        return info
    info["devices"] = devices
    info["available"] = bool(devices)
    if not devices:
        info["reason"] = "CuPy sees no CUDA device"
    return info


def _backend_of(a: Any) -> Backend:
    if type(a) is np.ndarray:  # the common case, first: this runs several times per training step
        return _BACKENDS["cpu"]
    for backend in _BACKENDS.values():
        if backend.name != "cpu" and backend.owns(a):
            return backend
    return _BACKENDS["cpu"]


def as_array(a: Any) -> Any:
    """`a` as an array of a known backend, without copying what already is one.

    Backend arrays pass as they are; other objects that speak DLPack (a PyTorch tensor,
    say) are shared without a copy, as NumPy arrays when they live on the host and as
    CuPy arrays when they live on a CUDA device; anything else goes through `np.asarray`.
    """
    if any(backend.owns(a) for backend in _BACKENDS.values()):
        return a
    for lazy in ("neg", "conj"):  # a PyTorch tensor's lazy negation or conjugation, which DLPack does not carry
        if callable(getattr(a, f"is_{lazy}", None)) and getattr(a, f"is_{lazy}")():
            a = getattr(a, f"resolve_{lazy}")()
    if hasattr(a, "__dlpack__") and hasattr(a, "__dlpack_device__"):
        kind, index = a.__dlpack_device__()
        if kind == 1:  # kDLCPU
            return np.from_dlpack(a)
        if kind == 2:  # kDLCUDA
            _BACKENDS["cuda"].check(int(index))
            with cupy.cuda.Device(int(index)):
                return cupy.from_dlpack(a)
        raise TypeError(f"cannot use an array on DLPack device type {kind}: xpbp knows the CPU (1) and CUDA (2)")
    return np.asarray(a)


def get_array_module(a: Any) -> ModuleType:
    """NumPy for host data (arrays, lists, scalars), CuPy for CuPy arrays."""
    return _backend_of(a).xp


def gather_bytes(device: str) -> int:
    """How many bytes of examples an epoch on `device` gathers at once (`Backend.gather_bytes`)."""
    return _split(canonical(device))[0].gather_bytes


def block_bytes(device: str) -> int:
    """How many bytes of a hidden layer the training step on `device` takes through its
    elementwise work at once (`Backend.block_bytes`; 0: the whole layer)."""
    return _split(canonical(device))[0].block_bytes


def device_of(a: Any) -> str:
    """`"cpu"` for host data, `"cuda:N"` for an array on GPU N."""
    backend = _backend_of(a)
    return "cpu" if backend.name == "cpu" else f"{backend.name}:{backend.index_of(a)}"


def to_numpy(a: Any) -> np.ndarray:
    """`a` as a NumPy array, copying it to the host if it lives on a device."""
    return _backend_of(a).to_numpy(a)


def to_device(a: Any, device: str) -> Any:
    """`a` as an array on `device`; no copy when it already lives there."""
    backend, index = _split(canonical(device))
    source = _backend_of(a)
    if source is backend and backend.name != "cpu" and source.index_of(a) != index:
        return backend.moved(a, index)  # between two devices of one kind
    if source is not backend:
        a = source.to_numpy(a)  # from one kind of device to another, through the host
    return backend.asarray(a, index)
