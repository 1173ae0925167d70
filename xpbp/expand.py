"""Artificially expanded training data (Nielsen, ch. 3): each epoch, every training image
is moved by a small random shift and, optionally, mirrored left to right, so that the
network sees a slightly different example every time.

The shift (up to `shift` pixels each way, rows and columns drawn apart) and the mirror
(with probability 1/2) of an example in an epoch are a hash of the network's seed, its
epoch count and the example's row in the data — like the dropout masks
(`xpbp.draws`): the same on every device, rank and replay. Pixels shifted in are 0.
The moved images are gathered on the device, one mini-batch at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import get_array_module, to_device
from .draws import scramble

__all__ = ["Expansion"]

_EXPAND = 0xE3A9D


class Expansion:
    """Shifts of up to `shift` pixels and, with `mirror`, left-right mirror images of
    examples that are `height` × `width` images stored row by row."""

    def __init__(self, height: int, width: int, shift: int, mirror: bool, device: str) -> None:
        self.height, self.width, self.shift, self.mirror = height, width, shift, mirror
        pixel = np.arange(height * width)
        self._rows = to_device(pixel // width, device)  # each pixel's row and column
        self._columns = to_device(pixel % width, device)

    def key(self, seed: int, epochs_trained: int) -> np.uint64:
        """The epoch's key: drawn on the host from the seed and the count."""
        return np.random.SeedSequence([seed, epochs_trained, _EXPAND]).generate_state(1, dtype=np.uint64)[0]

    def apply(self, key: np.uint64, rows: Any, X: Any) -> Any:
        """The examples `X` `(m, height·width)` (rows `rows` of the data), moved: a new array."""
        xp = get_array_module(X)
        m, n = X.shape
        h = scramble(rows.astype(np.uint64) ^ key)
        span = np.uint64(2 * self.shift + 1)
        dy = (h % span).astype(np.int64) - self.shift
        dx = ((h >> np.uint64(21)) % span).astype(np.int64) - self.shift
        columns = self._columns[None, :]
        if self.mirror:
            flip = ((h >> np.uint64(42)) & np.uint64(1)).astype(bool)
            columns = xp.where(flip[:, None], self.width - 1 - columns, columns)
        source_r = self._rows[None, :] - dy[:, None]  # output pixel (r, c) takes (r − dy, c − dx)
        source_c = columns - dx[:, None]
        inside = (source_r >= 0) & (source_r < self.height) & (source_c >= 0) & (source_c < self.width)
        index = xp.where(inside, source_r * self.width + source_c, 0) + xp.arange(m)[:, None] * n
        moved = X.reshape(-1).take(index)
        moved *= inside
        return moved
