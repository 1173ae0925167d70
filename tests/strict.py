"""A strict stand-in for CuPy, for the test suite only: NumPy arrays behind a wall.

Registered by ``conftest.py`` as the device ``"strict"``, it behaves the way CuPy
behaves on a GPU, only louder, so a CPU-only test run proves that the library's GPU
code path makes no accidental host round trip:

- its arrays are a type of their own (:class:`StrictArray`); NumPy functions and
  ufuncs refuse them (``__array__``, ``__array_function__``, ``__array_ufunc__``),
  and so do ``float``, ``int``, ``bool``, ``operator.index``, ``.item()``,
  ``.tolist()`` and friends: each of these is a host synchronisation on a GPU;
- host arrays mixed into device arithmetic or indexing raise, as CuPy's do;
- the only doors are the backend's ``to_numpy`` and ``to_device`` (through
  ``StrictBackend.to_numpy`` and ``.asarray``), and each crossing is counted in
  :data:`LEDGER` with the stack that made it;
- like CuPy, it runs xpbp's fused elementwise kernels (:class:`xpbp.backend.Elementwise`),
  interpreting their C statements with NumPy (:class:`StrictKernel`), so the code that
  launches them, and what they compute, are tested without a GPU; each launch is logged.

xpbp itself knows nothing of this module: it goes through ``xpbp.backend`` like CuPy.
"""

from __future__ import annotations

import functools
import operator
import re
import traceback
from dataclasses import dataclass, field

import numpy as np

from xpbp.backend import Backend, Elementwise


class HostSync(TypeError):
    """An implicit device-to-host conversion: a stall on a GPU, refused here."""


@dataclass
class Ledger:
    """Every explicit crossing between host and strict device, with where it came from."""

    to_host: list[str] = field(default_factory=list)
    to_device: list[str] = field(default_factory=list)
    kernels: list[str] = field(default_factory=list)  # the names of the fused kernels launched

    def reset(self) -> None:
        self.to_host.clear()
        self.to_device.clear()
        self.kernels.clear()

    @staticmethod
    def _stack() -> str:
        return "".join(traceback.format_stack(limit=14)[:-2])


LEDGER = Ledger()


def _refuse(what: str):
    def method(self, *args, **kwargs):
        raise HostSync(f"{what} on a device array is an implicit host synchronisation; use xpbp.to_numpy")

    return method


def _unwrap(x):
    """The NumPy array behind a device array; host arrays are refused, scalars pass."""
    if isinstance(x, StrictArray):
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
    """Arrays and NumPy scalars come back as device arrays (CuPy's reductions give 0-d arrays)."""
    if isinstance(x, (np.ndarray, np.generic)):
        if MEMORY_LIMIT[0] is not None and x.nbytes > MEMORY_LIMIT[0]:
            raise OutOfMemory(f"out of memory allocating {x.nbytes} bytes (limit {MEMORY_LIMIT[0]})")
        return StrictArray(np.asarray(x))
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
    """A device array: metadata is free to read, data only through the backend."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs refuse it, and binary operators defer to ours
    __hash__ = None

    def __init__(self, a: np.ndarray):
        self._a = a

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    T = property(lambda self: StrictArray(self._a.T))

    def __len__(self):
        return len(self._a)

    def __getattr__(self, name):  # ndarray methods: sum, max, argmax, astype, reshape, ...
        if name.startswith("__"):  # __array_interface__, __array_struct__, __dlpack__: doors to the data
            raise AttributeError(name)
        attr = getattr(self._a, name)
        return _on_device(attr) if callable(attr) else attr

    def __getitem__(self, index):
        return StrictArray(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    def __repr__(self):
        return f"StrictArray(shape={self.shape}, dtype={self.dtype})"

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
    return lambda self, other: _wrap(op(self._a, _unwrap(other)))


def _reflected(op):
    return lambda self, other: _wrap(op(_unwrap(other), self._a))


def _inplace(op):
    def method(self, other):
        op(self._a, _unwrap(other))
        return self

    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
    _op = getattr(operator, f"{_name}_" if _name in ("and", "or") else _name)
    setattr(StrictArray, f"__{_name}__", _binary(_op))
    setattr(StrictArray, f"__r{_name}__", _reflected(_op))
    setattr(StrictArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(StrictArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_name}__", (lambda op: lambda self: StrictArray(op(self._a)))(getattr(operator, _name)))


class _RandomState:
    def __init__(self, seed):
        self._rs = np.random.RandomState(seed)

    def __getattr__(self, name):
        return _on_device(getattr(self._rs, name))


class _Random:
    RandomState = _RandomState


class StrictModule:
    """The array module of the strict device: NumPy's functions, on device arrays only.

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
            return _wrap(attr(a._a, *args, **kwargs))

        return call


XP = StrictModule()


class StrictKernel:
    """``cupy.ElementwiseKernel`` on the strict device, interpreted.

    Parameters are ``T name`` (T is bound to the dtype of the array arguments, which must
    agree, and scalars are cast to it, as CuPy does); each statement of the operation,
    ``out = expr`` or ``out op= expr`` with + - * /, parentheses, numbers and ``exp``, runs
    as one NumPy expression over whole arrays: the same result as C's element by element,
    since no statement reads another element. Anything else raises, so that a kernel this
    cannot read fails here, not on a GPU.
    """

    _STATEMENT = re.compile(r"(\w+)\s*([-+*/]?)=\s*([\w\s.+\-*/()]+)")

    def __init__(self, op: Elementwise):
        self.name = op.name
        self.ins, self.outs = self._params(op.in_params), self._params(op.out_params)
        self.statements = []
        for text in filter(str.strip, op.operation.split(";")):
            match = self._STATEMENT.fullmatch(text.strip())
            if match is None or match[1] not in self.outs:
                raise ValueError(f"{op.name}: cannot interpret {text.strip()!r} (only assignments to outputs)")
            target, operator_, expr = match.groups()
            self.statements.append((target, f"{target} {operator_} ({expr})" if operator_ else expr))

    @staticmethod
    def _params(text: str) -> list[str]:
        names = []
        for param in text.split(","):
            kind, name = param.split()
            if kind != "T":
                raise ValueError(f"only the type placeholder T is interpreted, got {param.strip()!r}")
            names.append(name)
        return names

    def __call__(self, *args):
        if len(args) not in (len(self.ins), len(self.ins) + len(self.outs)):
            raise TypeError(f"{self.name} takes {len(self.ins)} inputs, then optionally {len(self.outs)} outputs; got {len(args)} arguments")
        arrays = [a for a in args if isinstance(a, StrictArray)]
        dtypes = {a.dtype for a in arrays}
        if len(dtypes) != 1:
            raise TypeError(f"{self.name}: T is bound by the array arguments, which must share one dtype, got {dtypes}")
        dtype = dtypes.pop()
        values = {name: a._a if isinstance(a, StrictArray) else dtype.type(_unwrap(a)) for name, a in zip(self.ins, args)}
        outs = list(args[len(self.ins):]) or [
            _wrap(np.empty(np.broadcast_shapes(*(a.shape for a in arrays)), dtype)) for _ in self.outs
        ]
        values.update({name: a._a for name, a in zip(self.outs, outs)})
        with np.errstate(all="ignore"):  # a GPU raises no floating-point warnings
            for target, expr in self.statements:
                values[target][...] = eval(expr, {"__builtins__": {}, "exp": np.exp}, values)
        LEDGER.kernels.append(self.name)
        return outs[0] if len(outs) == 1 else tuple(outs)


class StrictBackend(Backend):
    """One strict device, ``strict:0``."""

    name = "strict"

    @property
    def xp(self):
        return XP

    def check(self, index: int) -> None:
        if index != 0:
            raise RuntimeError(f"device 'strict:{index}' does not exist: there is one strict device, strict:0")

    def owns(self, a) -> bool:
        return isinstance(a, StrictArray)

    def asarray(self, a, index: int):
        if isinstance(a, StrictArray):
            return a
        LEDGER.to_device.append(LEDGER._stack())
        return StrictArray(np.array(a, copy=True))  # device memory is not the host's

    def to_numpy(self, a) -> np.ndarray:
        LEDGER.to_host.append(LEDGER._stack())
        return a._a.copy()

    @functools.cache
    def kernel(self, op: Elementwise) -> StrictKernel:
        return StrictKernel(op)
