"""Feature scaling a network carries with it: fitted on the training rows only, saved in
the model file, applied to every row the network is given (`fit`, `predict`,
`predict_proba`, `outputs`, `metrics`), and written into an exported ONNX graph.

`standard` maps each column to mean 0 and standard deviation 1, `minmax` to [0, 1];
either is x′ = (x − offset) / scale per column, with a column that is constant in the
training rows left unscaled (scale 1). `check` is the warning `fit` gives when
the features it sees are far from unit scale, the silent failure scaling prevents.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import backend

__all__ = ["KINDS", "ScaleWarning", "Scaling", "check", "fit"]

KINDS = ("standard", "minmax")
_BLOCK_BYTES = 1 << 20  # float64 bytes per block of the scale check, so that it holds no copy of X
_SAMPLE_ROWS = 1024  # rows the scale check looks at, spread evenly through X
_LARGEST = 1e3  # |x| beyond this is far from unit scale
_SPREAD = 1e3  # nor is a column whose standard deviation is this many times the median column's


class ScaleWarning(UserWarning):
    """Features far from unit scale, given to `fit` (`check`)."""


@dataclass(frozen=True)
class Scaling:
    """x′ = (x − offset) / scale, column by column; `offset` and `scale` are float64
    vectors as long as a row (`scale` > 0)."""

    kind: str
    offset: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"scaling must be one of {', '.join(map(repr, KINDS))}, got {self.kind!r}")
        if self.offset.shape != self.scale.shape or self.offset.ndim != 1:
            raise ValueError("a scaling's offset and scale must be vectors of one length")
        if not (np.isfinite(self.offset).all() and np.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise ValueError("a scaling's offset must be finite and its scale finite and positive")

    def apply(self, X: Any, dtype: Any = np.float64, device: str = "cpu") -> Any:
        """Rows of `X` scaled, as a new array of `dtype` on `device` (where `X` is sent
        first, if it lives elsewhere); the arithmetic is done in that dtype, on the device."""
        dtype = np.dtype(dtype)
        offset, scale = (backend.to_device(v.astype(dtype), device) for v in (self.offset, self.scale))
        X = backend.to_device(backend.as_array(X), device)
        with backend.using(device):
            out = X.astype(dtype, copy=True)  # a copy, never the caller's array
            out -= offset
            out /= scale
        return out


def fit(X: np.ndarray, kind: str) -> Scaling | None:
    """The scaling of `kind` (`"standard"`, `"minmax"` or `"none"`, which gives
    None) fitted on the rows of `X` (host, finite)."""
    if kind == "none":
        return None
    if kind not in KINDS:
        raise ValueError(f"scale must be 'standard', 'minmax' or 'none', got {kind!r}")
    X = np.asarray(X, dtype=np.float64)
    if kind == "standard":
        offset, scale = X.mean(axis=0), X.std(axis=0)
    else:
        offset = X.min(axis=0)
        scale = X.max(axis=0) - offset
    scale = np.where(scale > 0, scale, 1.0)  # a constant column is left as it is
    return Scaling(kind, offset, scale)


def check(X: Any, xp: Any) -> None:
    """Warn (`ScaleWarning`) when the features in rows of `X` are far from unit scale:
    a value beyond 1e3 in magnitude, or a column whose standard deviation is more than
    1e3 times the median column's (columns of a tiny spread, such as an image's border
    pixels, are no harm). Gradient descent then trains badly without saying so.
    Looked at in at most 1,024 rows spread evenly through `X` (a cost that does
    not grow with N, paid by every `fit`), in blocks, so that it holds no copy of them;
    one transfer at the end."""
    X = X[:: -(-X.shape[0] // _SAMPLE_ROWS) or 1]
    n = X.shape[0]
    if n == 0:
        return
    largest = xp.zeros((), dtype=np.float64)
    total, squares = xp.zeros(X.shape[1], dtype=np.float64), xp.zeros(X.shape[1], dtype=np.float64)
    rows = max(1, _BLOCK_BYTES // (8 * max(X.shape[1], 1)))
    for k in range(0, n, rows):
        block = X[k : k + rows].astype(np.float64)
        largest = xp.maximum(largest, xp.abs(block).max())
        total += block.sum(axis=0)
        squares += (block * block).sum(axis=0)
    mean = total / n
    std = xp.sqrt(xp.maximum(squares / n - mean * mean, 0.0))
    host = backend.to_numpy(xp.concatenate([largest[None], std]))
    _warn(float(host[0]), host[1:])


def _warn(largest: float, std: np.ndarray) -> None:
    varying = std[std > 1e-12]
    spread = float(varying.max() / np.median(varying)) if varying.size else 1.0
    if largest <= _LARGEST and spread <= _SPREAD:
        return
    why = (
        f"a feature reaches |x| = {largest:.3g}"
        if largest > _LARGEST
        else f"a feature's standard deviation is {spread:.3g} times the median feature's"
    )
    warnings.warn(
        f"{why}: features far from unit scale make gradient descent train badly (often no better than guessing). "
        "Scale them first: with Network.scaling = xpbp.scaling.fit(X_train, 'standard'), "
        "sklearn.preprocessing.StandardScaler, or xpbp train --scale standard",
        ScaleWarning,
        stacklevel=5,  # _warn, check, fit, its device wrapper: the caller of fit
    )
