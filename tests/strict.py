"""A strict stand-in for CuPy, for the test suite only: NumPy arrays behind a wall.

Registered by ``conftest.py`` as the devices ``"strict:0"`` and ``"strict:1"``, it
behaves the way CuPy behaves on a machine with two GPUs, only louder, so a CPU-only
test run proves that the library's GPU code path makes no accidental host round trip
and puts every array on the right GPU:

- its arrays are a type of their own (:class:`StrictArray`); NumPy functions and
  ufuncs refuse them (``__array__``, ``__array_function__``, ``__array_ufunc__``),
  and so do ``float``, ``int``, ``bool``, ``operator.index``, ``.item()``,
  ``.tolist()`` and friends: each of these is a host synchronisation on a GPU;
- host arrays mixed into device arithmetic or indexing raise, as CuPy's do;
- the only doors are the backend's ``to_numpy`` and ``to_device`` (through
  ``StrictBackend.to_numpy`` and ``.asarray``), and each crossing is counted in
  :data:`LEDGER` with the stack that made it;
- each array belongs to the device that was current when it was made (as CuPy's
  allocations land on the current GPU), and any work on an array while the other
  device is current raises :class:`WrongDevice`: an array allocated, or a permutation
  drawn, under the wrong device is caught at its first use;
- its random generator, like CuPy's, draws other numbers than NumPy's from a seed;
- like CuPy, it runs xpbp's fused operations (:class:`xpbp.backend.Fused`) as one
  "kernel" each: their own array code, run here with this module, each launch logged.

xpbp itself knows nothing of this module: it goes through ``xpbp.backend`` like CuPy.
"""

from __future__ import annotations

import contextlib
import operator
import traceback
from dataclasses import dataclass, field

import numpy as np

from xpbp.backend import Backend, CudaBackend, Fused

DEVICES = 2  # strict:0 and strict:1
CURRENT = [0]  # the current strict device, as cupy.cuda.Device().id


class HostSync(TypeError):
    """An implicit device-to-host conversion: a stall on a GPU, refused here."""


class WrongDevice(ValueError):
    """Work on an array of one device while the other is current."""


@dataclass
class Ledger:
    """Every explicit crossing between host and strict device, with where it came from."""

    to_host: list[str] = field(default_factory=list)
    to_device: list[str] = field(default_factory=list)
    kernels: list[str] = field(default_factory=list)  # the names of the fused kernels launched
    between: list[str] = field(default_factory=list)  # copies from one strict device to another

    def reset(self) -> None:
        self.to_host.clear()
        self.to_device.clear()
        self.kernels.clear()
        self.between.clear()

    @staticmethod
    def _stack() -> str:
        return "".join(traceback.format_stack(limit=14)[:-2])


LEDGER = Ledger()


def _refuse(what: str):
    def method(self, *args, **kwargs):
        raise HostSync(f"{what} on a device array is an implicit host synchronisation; use xpbp.to_numpy")

    return method


def _unwrap(x):
    """The NumPy array behind a device array of the current device; host arrays and
    arrays of the other device are refused, scalars pass."""
    if isinstance(x, StrictArray):
        if x._device != CURRENT[0]:
            raise WrongDevice(f"an array of strict:{x._device} was used while strict:{CURRENT[0]} was current")
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"a host numpy.ndarray {x.shape} was mixed into device arithmetic; move it with xpbp.to_device")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


class OutOfMemory(MemoryError):
    """The strict device's stand-in for cupy.cuda.memory.OutOfMemoryError."""


# The largest array the strict device will hold, in bytes; tests lower it to provoke OutOfMemory.
MEMORY_LIMIT = [None]


def _wrap(x):
    """Arrays and NumPy scalars come back as arrays of the current device (CuPy's
    reductions give 0-d arrays)."""
    if isinstance(x, (np.ndarray, np.generic)):
        if MEMORY_LIMIT[0] is not None and x.nbytes > MEMORY_LIMIT[0]:
            raise OutOfMemory(f"out of memory allocating {x.nbytes} bytes (limit {MEMORY_LIMIT[0]})")
        return StrictArray(np.asarray(x), CURRENT[0])
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _on_device(fn):
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))

    return call


class StrictArray:
    """A device array: metadata is free to read, data only through the backend, and
    only while its device is current."""

    __slots__ = ("_a", "_device")
    __array_ufunc__ = None  # NumPy ufuncs refuse it, and binary operators defer to ours
    __hash__ = None

    def __init__(self, a: np.ndarray, device: int):
        self._a, self._device = a, device

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: StrictArray(self._a.T, self._device))

    def __len__(self):
        return len(self._a)

    def __getattr__(self, name):  # ndarray methods: sum, max, argmax, astype, reshape, ...
        if name.startswith("__"):  # __array_interface__, __array_struct__, __dlpack__: doors to the data
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return attr
        _unwrap(self)  # the array's own device must be current
        return _on_device(attr)

    def __getitem__(self, index):
        return StrictArray(_unwrap(self)[_unwrap(index)], self._device)

    def __setitem__(self, index, value):
        _unwrap(self)[_unwrap(index)] = _unwrap(value)

    def __repr__(self):
        return f"StrictArray(shape={self.shape}, dtype={self.dtype}, device=strict:{self._device})"

    __array__ = _refuse("np.asarray / __array__")
    __float__ = _refuse("float()")
    __int__ = _refuse("int()")
    __complex__ = _refuse("complex()")
    __bool__ = _refuse("bool()")
    __index__ = _refuse("operator.index()")
    item = _refuse(".item()")
    tolist = _refuse(".tolist()")
    tobytes = _refuse(".tobytes()")
    get = _refuse(".get()")

    def __array_function__(self, func, types, args, kwargs):
        raise HostSync(f"numpy.{func.__name__} was called on a device array; use the backend's array module")


def _binary(op):
    return lambda self, other: _wrap(op(_unwrap(self), _unwrap(other)))


def _reflected(op):
    return lambda self, other: _wrap(op(_unwrap(other), _unwrap(self)))


def _inplace(op):
    def method(self, other):
        op(_unwrap(self), _unwrap(other))
        return self

    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor", "lshift", "rshift"):
    _op = getattr(operator, f"{_name}_" if _name in ("and", "or") else _name)
    setattr(StrictArray, f"__{_name}__", _binary(_op))
    setattr(StrictArray, f"__r{_name}__", _reflected(_op))
    setattr(StrictArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(StrictArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_name}__", (lambda op: lambda self: _wrap(op(_unwrap(self))))(getattr(operator, _name)))


class _RandomState:
    """cupy.random.RandomState: its draws land on the device current when they are made,
    and like CuPy's they are not NumPy's for the same seed (here Philox's, not the Mersenne
    Twister's), so that a draw left on the device trains another network than the CPU."""

    def __init__(self, seed):
        self._rs = np.random.Generator(np.random.Philox(seed))

    def __getattr__(self, name):
        return _on_device(getattr(self._rs, name))


class _Random:
    RandomState = _RandomState


class StrictModule:
    """The array module of the strict devices: NumPy's functions, on device arrays only.

    Creating an array from host data here (``asarray``, ``array``) is refused: host
    data reaches the device only through ``xpbp.to_device``.
    """

    __name__ = "strict"
    random = _Random()

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes, finfo, constants
        if name in ("asarray", "array", "asanyarray", "ascontiguousarray"):
            return self._no_host(attr)
        return _on_device(attr)

    @staticmethod
    def _no_host(attr):
        def call(a, *args, **kwargs):
            if not isinstance(a, StrictArray):
                raise TypeError("host data reaches the strict device only through xpbp.to_device")
            return _wrap(attr(_unwrap(a), *args, **kwargs))

        return call


XP = StrictModule()


class StrictBackend(Backend):
    """Two strict devices, ``strict:0`` and ``strict:1``."""

    name = "strict"
    gather_bytes = CudaBackend.gather_bytes  # as CuPy's: one gather launch for many mini-batches
    block_bytes = CudaBackend.block_bytes  # as CuPy's: one kernel per operation over the whole layer

    @property
    def xp(self):
        return XP

    def check(self, index: int) -> None:
        if not 0 <= index < DEVICES:
            raise RuntimeError(f"device 'strict:{index}' does not exist: there are {DEVICES} strict devices, strict:0 to strict:{DEVICES - 1}")

    def count(self) -> int:
        return DEVICES

    def current(self) -> int:
        return CURRENT[0]

    @contextlib.contextmanager
    def using(self, index: int):
        before, CURRENT[0] = CURRENT[0], index
        try:
            yield
        finally:
            CURRENT[0] = before

    def owns(self, a) -> bool:
        return isinstance(a, StrictArray)

    def index_of(self, a) -> int:
        return a._device

    def asarray(self, a, index: int):
        if isinstance(a, StrictArray):
            return a
        LEDGER.to_device.append(LEDGER._stack())
        a = np.array(a, copy=True)  # device memory is not the host's
        if MEMORY_LIMIT[0] is not None and a.nbytes > MEMORY_LIMIT[0]:
            raise OutOfMemory(f"out of memory allocating {a.nbytes} bytes (limit {MEMORY_LIMIT[0]})")
        return StrictArray(a, index)

    def to_numpy(self, a) -> np.ndarray:
        LEDGER.to_host.append(LEDGER._stack())
        return a._a.copy()

    def moved(self, a, index: int):
        """A copy on another strict device, as CuPy copies GPU to GPU: no host transfer."""
        LEDGER.between.append(LEDGER._stack())
        return StrictArray(a._a.copy(), index)

    def run(self, op: Fused, args) -> None:
        """One launch of a fused operation: its own array code, on this module."""
        LEDGER.kernels.append(op.name)
        op.fn(XP, *args)
