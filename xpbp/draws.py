"""Random draws that come out the same on every device: each epoch's order of the
examples, the validation split carved from the training data, and the dropout masks.

CuPy's random generators are not NumPy's, so a draw made with `xp.random` trains
another network on a GPU than on the CPU from the same seed. Here nothing is drawn
with `xp.random`:

- the **order** of an epoch and the **split** are drawn on the host, with NumPy, from
  the network's seed (and, for the order, the number of epochs trained), and sent to
  the device once;
- the **dropout masks** are hashed on the device, by integer arithmetic alone, from a
  key of (seed, epoch count, layer) and each example's row in the data and each
  neuron's index (a counter-based generator, as Salmon et al. 2011 describe): the same
  bits on NumPy and CuPy, and the same for an example whichever mini-batch, process or
  replay of an epoch it falls in.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import get_array_module, to_device

__all__ = ["TEST", "Dropout", "held_out", "order", "scramble", "split"]

# Distinct streams for the draws made from one seed.
_ORDER, _SPLIT, _DROPOUT = 0, 0x5EED5, 0xD207
TEST = 0x7E57  # the stream of the test split `xpbp train --data` carves from a file


def scramble(z: Any) -> Any:
    """SplitMix64's finaliser, elementwise on uint64 arrays (NumPy or CuPy): a bijection
    that spreads every input bit over every output bit."""
    z = z * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def order(seed: int, epochs_trained: int, n: int) -> np.ndarray:
    """The order of `n` examples in the epoch after `epochs_trained` epochs: a
    permutation drawn on the host from the seed and that count alone, so that a resumed
    run, a divergence replay and every rank and device draw the same one."""
    key = np.random.SeedSequence([seed, epochs_trained]).generate_state(1)[0]
    return np.random.RandomState(int(key)).permutation(n)


def split(
    seed: int, n: int, fraction: float, labels: np.ndarray | None = None, stream: int = _SPLIT
) -> tuple[np.ndarray, np.ndarray]:
    """`(train, held_out)`: the rows of `n` examples to train on and the rows held out,
    each sorted. `held_out` of them are held out, drawn from the seed (and
    `stream`: the validation split's by default, `TEST` for a test split); with
    `labels`, that many of each class (stratified)."""
    rng = np.random.default_rng([seed, stream])
    if labels is None:
        held = rng.permutation(n)[: held_out(n, fraction)]
    else:
        classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        held = np.concatenate([rng.permutation(rows)[: _of_class(len(rows), fraction)] for rows in classes])
        if held.size == 0:  # no class large enough to give one: hold out one row of the data
            held = rng.permutation(n)[:1]
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def held_out(n: int, fraction: float, labels: np.ndarray | None = None) -> int:
    """How many of `n` examples `split` holds out for `fraction`: f·n rounded, at
    least one; with `labels`, f of each class rounded, each class with two or more
    examples keeping at least one on each side (and one in all, at least). It depends
    on the counts alone, not on the seed."""
    if labels is None:
        return max(1, int(np.floor(fraction * n + 0.5)))
    counts = np.unique(labels, return_counts=True)[1]
    return max(1, sum(_of_class(int(c), fraction) for c in counts))


def _of_class(k: int, fraction: float) -> int:
    return min(max(1, int(np.floor(fraction * k + 0.5))), k - 1)


class Dropout:
    """Inverted dropout of hidden neurons with probability `p`: each training step
    multiplies every hidden activation by a mask of 0 (dropped) or 1/(1 − p) (kept), so
    that the expected activation is unchanged and predicting needs no change.

    Whether a neuron is kept for an example in a step is a hash of the network's seed, its
    epoch count, the layer, the neuron and the example's row in the training data, kept
    when its 64 bits are at least p·2⁶⁴ (probability 1 − p).
    """

    def __init__(self, p: float, widths: list[int], device: str, dtype: np.dtype) -> None:
        self.p, self.widths, self.device = p, list(widths), device
        self.threshold = np.uint64(min(int(p * 2.0**64), 2**64 - 1))
        self.scale = dtype.type(1.0 / (1.0 - p))

    def keys(self, seed: int, epochs_trained: int) -> list[Any]:
        """Each hidden layer's neuron keys, `(width, 1)` uint64, for the epoch after
        `epochs_trained`: drawn on the host, sent to the device once per epoch."""
        state = np.random.SeedSequence([seed, epochs_trained, _DROPOUT]).generate_state(len(self.widths), dtype=np.uint64)
        neurons = [np.arange(n, dtype=np.uint64)[:, None] for n in self.widths]
        return [to_device(scramble(j ^ key), self.device) for j, key in zip(neurons, state)]

    def masks(self, keys: list[Any], rows: Any, out: list[Any]) -> list[Any]:
        """The masks of a mini-batch whose examples are the data's `rows` (an int array
        on the device), written into `out`, one `(width, m)` buffer per hidden layer."""
        examples = scramble(rows.astype(np.uint64) + np.uint64(_DROPOUT))[None, :]
        for key, mask in zip(keys, out):
            get_array_module(mask).multiply(scramble(key ^ examples) >= self.threshold, self.scale, out=mask)
        return out
