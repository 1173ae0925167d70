"""The checks shared by the entry points: arguments, matrices and targets.

Each raises `ValueError` or `TypeError` naming the argument, what was expected and
what was given, before anything is changed or any long work starts. Arrays are checked
where they live: for host data that is free; for device data it costs one transfer of
a flag, which the equations' own entry points (`feedforward`, `backprop`, `cost`)
never pay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import backend
from .draws import scramble

__all__ = [
    "Inputs",
    "all_finite",
    "dtype",
    "fingerprint",
    "labels",
    "matrix",
    "positive_int",
    "real",
    "real_array",
    "replacements",
    "sample_weight",
    "seed",
]


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def seed(value: Any) -> int | None:
    """A seed: None, or an integer in [0, 2**63) (files keep it as an int64)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**63):
        raise ValueError(f"seed must be an integer in [0, 2**63) or None, got {value!r}")
    return None if value is None else int(value)


def dtype(value: Any) -> np.dtype:
    """`"float32"` or `"float64"` (or their NumPy dtypes) as a dtype."""
    try:
        found = None if value is None else np.dtype(value)
    except TypeError:
        found = None
    if found not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}")
    return found


def real(value: Any, name: str, low: float, high: float = math.inf, *, high_open: bool = False) -> float:
    """`value` as a finite float in [low, high] (or [low, high) with `high_open`); text
    and booleans are refused, not read as numbers."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not (low <= v and (v < high if high_open else v <= high)):
        bound = f"[{low}, {high})" if high_open else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


def all_finite(a: Any) -> bool:
    """No NaN or Inf in `a`, checked where `a` lives: free for host data, one
    transfer of a flag for device data. Its sum tells in one pass (a NaN or an Inf
    makes it NaN or Inf), and where the sum overflows, its smallest and largest values
    (a NaN makes both NaN); the check holds no array of `a`'s size."""
    if a.size == 0:
        return True
    xp = backend.get_array_module(a)
    with np.errstate(over="ignore", invalid="ignore"):
        if bool(backend.to_numpy(xp.isfinite(a.sum()))):
            return True
    return bool(backend.to_numpy(xp.isfinite(xp.stack([a.min(), a.max()])).all()))


def real_array(a: Any, name: str) -> Any:
    """`a` as an array (DLPack objects shared without a copy, other host data as NumPy),
    refusing what is not real numbers before it reaches a device."""
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array, whose mask xpbp would ignore: fill the masked values ({name}.filled(value)) "
            f"or drop those rows ({name}[~{name}.mask.any(axis=1)]) first"
        )
    try:
        a = backend.as_array(a)
    except (TypeError, ValueError, BufferError, RuntimeError) as e:
        raise TypeError(f"{name} must be an array of real numbers; converting it failed: {e}") from None
    if a.dtype.kind in "USO" and not name.lower().startswith(("x", "a", "validation_data[0]")):
        raise TypeError(
            f"{name} must hold real numbers, got dtype {a.dtype}: map class labels that are strings or objects to "
            f"integers first, e.g. classes, {name} = numpy.unique({name}, return_inverse=True) (and keep classes to name "
            "the predictions; xpbp.tables.read does this for a file)"
        )
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a


def matrix(a: Any, name: str, width: int, *, dtype: np.dtype, device: str, columns: bool, finite: bool = True) -> Any:
    """A 2-D input, validated and brought to `device` in `dtype`. `columns`: examples
    are columns (shape `(width, m)`), else rows (shape `(N, width)`). `finite=False`
    checks for NaN and Inf only in host data, where it is free."""
    a = real_array(a, name)
    want = f"({width}, m)" if columns else f"(n_examples, {width})"
    if a.ndim != 2 or a.shape[0 if columns else 1] != width:
        raise ValueError(f"{name} must have shape {want}, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: shape {a.shape}")
    narrowing = a.dtype.kind == "f" and a.dtype.itemsize > dtype.itemsize
    source = backend.device_of(a)
    with backend.using(source), np.errstate(over="ignore"):  # where the data lives: free for host data
        a = a.astype(dtype, copy=False)
        if (finite or source == "cpu") and not all_finite(a):
            beyond = f" (or values beyond the range of {dtype})" if narrowing else ""
            raise ValueError(f"{name} contains NaN or Inf{beyond}")
    return backend.to_device(a, device)


def labels(y: Any, name: str) -> Any:
    """1-D class labels as integers, where `y` lives: integers as they are, booleans as
    0 and 1, and floats that are all whole numbers (such as 0. and 1.) as integers."""
    if y.dtype.kind in "iu":
        return y
    with backend.using(backend.device_of(y)):
        if y.dtype.kind == "b":
            return y.astype(np.int64)
        xp = backend.get_array_module(y)
        if all_finite(y) and bool(backend.to_numpy((y == xp.floor(y)).all())):
            return y.astype(np.int64)
    raise TypeError(
        f"{name} must hold integer class labels, got dtype {y.dtype} with values that are not whole numbers "
        "(for continuous targets, a regression, give the network task='regression')"
    )


def sample_weight(w: Any, n: int, *, dtype: np.dtype, device: str) -> Any:
    """Sample weights: `(n,)`, finite, none negative, not all 0; on `device` in `dtype`."""
    w = real_array(w, "sample_weight")
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), one weight per example, got shape {w.shape}")
    source = backend.device_of(w)
    with backend.using(source):
        xp = backend.get_array_module(w)
        w = w.astype(dtype, copy=False)
        finite, lowest, total = backend.to_numpy(xp.stack([xp.isfinite(w).all().astype(dtype), w.min(), w.sum()])).tolist()
    if not finite:
        raise ValueError("sample_weight contains NaN or Inf")
    if lowest < 0 or total <= 0:
        raise ValueError("sample_weight must be >= 0 and not all 0")
    return backend.to_device(w, device)


def replacements(arrays: list[Any], views: list[Any], names: list[str], *, dtype: np.dtype, device: str) -> dict[int, Any]:
    """The arrays that are not the parameter `views` they stand in for, each checked
    (real, of the view's shape, finite) and brought to `device` in `dtype`, by position."""
    if len(arrays) != len(views):
        raise ValueError(f"net.weights and net.biases must hold {len(views)} arrays in all, got {len(arrays)}")
    taken = {}
    for i, (name, a, v) in enumerate(zip(names, arrays, views)):
        if a is not v:
            a = real_array(a, name)
            if a.shape != v.shape:
                raise ValueError(f"{name} must have shape {v.shape}, got shape {a.shape}")
            taken[i] = matrix(a, name, v.shape[1], dtype=dtype, device=device, columns=False)
    return taken


@dataclass(frozen=True)
class Inputs:
    """What the data given to a network must be: as wide as its input and output layers,
    and it goes to the network's dtype and device."""

    sizes: tuple[int, ...]
    dtype: np.dtype
    device: str

    def rows(self, X: Any, name: str) -> Any:
        """Examples as rows, `(N, sizes[0])`, checked for NaN and Inf."""
        return matrix(X, name, self.sizes[0], dtype=self.dtype, device=self.device, columns=False)

    def columns(self, a: Any, name: str, width: int) -> Any:
        """Inputs of the equations' entry points, examples as columns; NaN and Inf are looked
        for only in host data, so that these never synchronise with a device to validate."""
        return matrix(a, name, width, dtype=self.dtype, device=self.device, columns=True, finite=False)

    def pair(self, x: Any, y: Any) -> tuple[Any, Any]:
        """`x` `(sizes[0], m)` and `y` `(sizes[-1], m)` with equal m."""
        x, y = self.columns(x, "x", self.sizes[0]), self.columns(y, "y", self.sizes[-1])
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"x has {x.shape[1]} columns (examples) but y has {y.shape[1]}")
        return x, y


def fingerprint(xp: Any, *arrays: Any) -> Any:
    """A 64-bit checksum of 2-D arrays, on their device (a 0-d array): Σᵢⱼ h(bitsᵢⱼ) rᵢ cⱼ
    (mod 2⁶⁴), where h scrambles each element's bits (so that values whose low bits are
    all zero, such as 0.5 in float64, still count in full) and rᵢ, cⱼ are pseudo-random
    odd weights for each row and column: other values, or the same rows in another
    order, give another number. Integer arithmetic, so it is the same on every device;
    blocks of rows bound its memory."""
    total = xp.zeros(1, dtype=np.uint64)  # an array, not a scalar: NumPy's scalars warn when they wrap
    for a in arrays:
        bits = a.view(np.uint32 if a.dtype.itemsize == 4 else np.uint64)
        cols = scramble(xp.arange(bits.shape[1], dtype=np.uint64) + np.uint64(1 << 32)) | np.uint64(1)
        for k in range(0, bits.shape[0], _BLOCK):
            rows = scramble(xp.arange(k, min(k + _BLOCK, bits.shape[0]), dtype=np.uint64)) | np.uint64(1)
            total += (xp.matmul(scramble(bits[k : k + _BLOCK].astype(np.uint64)), cols) * rows).sum()
        total = scramble(total)
    return total[0]


_BLOCK = 4096
