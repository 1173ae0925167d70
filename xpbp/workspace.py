"""The training step's memory, and backprop written into it.

`Network.backprop` is the book's BP1–BP4, allocating every z, a and δ afresh. The
training step runs the same equations, line for line, but writes every large
intermediate into buffers kept from one step to the next (fresh multi-megabyte
temporaries would cost a page fault per 4 KB on every step):

- θ, ∇C and the optimizer's state buffers each lie in one flat buffer laid out alike
  (`Layout`), so that one array operation updates every w and b at once;
- each layer's z, a and δ (and, with dropout, each hidden layer's mask) for
  mini-batches of m examples, kept for the run's batch size and its short last batch
  only;
- on the CPU and without dropout, a hidden layer larger than `backend.block_bytes`
  goes through its elementwise work (z + b and σ after the forward product, BP2's ⊙ σ′ and BP3 after
  the backward one) a block of rows at a time, so that each block stays in cache from
  its first operation to its last instead of every operation streaming the whole layer
  through memory (the same values: the operations are elementwise, and each row's sum
  is taken whole).

`tests/test_backprop.py` holds `Workspace.backprop` equal to
`Network.backprop`, bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import backend, validation
from .activations import Activation
from .costs import Cost

__all__ = ["Layout", "Parameters", "Workspace"]


@dataclass(frozen=True)
class Layout:
    """Where the parameters of a network with layer widths `sizes` lie in one flat
    buffer: every weight matrix wˡ `(n_out, n_in)`, then every bias vector bˡ
    `(n_out, 1)`."""

    sizes: tuple[int, ...]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        pairs = list(zip(self.sizes[:-1], self.sizes[1:]))
        return [(n_out, n_in) for n_in, n_out in pairs] + [(n_out, 1) for _, n_out in pairs]

    @property
    def size(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)

    @property
    def weights(self) -> int:
        """How many elements the weight matrices hold (they come first)."""
        return sum(n_in * n_out for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))

    def views(self, flat: Any) -> list[Any]:
        """Each w, then each b, as a view of `flat`."""
        views, k = [], 0
        for shape in self.shapes:
            views.append(flat[k : k + math.prod(shape)].reshape(shape))
            k += math.prod(shape)
        return views

    def split(self, items: list[Any]) -> tuple[list[Any], list[Any]]:
        """`(weights, biases)` of `items`, every w then every b, as lists."""
        L = len(self.sizes) - 1
        return list(items[:L]), list(items[L:])

    def zeros(self, xp: Any, dtype: np.dtype) -> Any:
        """A new flat buffer of zeros (on the current device)."""
        return xp.zeros(self.size, dtype=dtype)


class Parameters:
    """θ: every w, then every b, of a network in one flat buffer on its device, and the
    views of it that the network shows as `net.weights` and `net.biases`."""

    def __init__(self, layout: Layout, flat: Any, dtype: np.dtype, device: str) -> None:
        if backend.device_of(flat) == "cpu":
            flat = np.asarray(flat).astype(dtype, copy=False)
        self.layout, self.dtype, self.device = layout, dtype, device
        with backend.using(device):
            self.theta = backend.to_device(flat, device)
            self.views = layout.views(self.theta)
        L = len(layout.sizes) - 1
        self.names = [f"net.weights[{l}]" for l in range(L)] + [f"net.biases[{l}]" for l in range(L)]

    def load(self, arrays: list[np.ndarray]) -> None:
        """Write host arrays, every w then every b, into θ in place."""
        flat = np.concatenate([a.ravel() for a in arrays]).astype(self.dtype)
        self.theta[...] = backend.to_device(flat, self.device)

    def take(self, arrays: list[Any]) -> bool:
        """Take into θ those of `arrays` (every w, then every b) that are not its own
        views, each checked before any is taken; whether there were any."""
        if len(arrays) == len(self.views) and all(a is v for a, v in zip(arrays, self.views)):
            return False
        for i, a in validation.replacements(arrays, self.views, self.names, dtype=self.dtype, device=self.device).items():
            self.views[i][...] = a
        return True

    def host(self) -> list[np.ndarray]:
        """Host copies of every w, then every b, in one transfer."""
        return self.layout.views(backend.to_numpy(self.theta).copy())


@dataclass(frozen=True)
class _Layer:
    """One layer's buffers for mini-batches of m examples (its z, a and δ, and with
    dropout its mask), the views of the gradient buffer that hold its ∂C/∂w and ∂C/∂b,
    and its σ."""

    z: Any
    a: Any
    delta: Any
    nabla_w: Any
    nabla_b: Any
    sigma: Activation
    mask: Any = None
    blocks: tuple[slice, ...] | None = None  # row blocks for the elementwise work of a large hidden layer


class Workspace:
    """The training step's buffers for one network on one device: the gradient ∇C (one
    flat buffer, seen as each layer's `nabla_w` and `nabla_b`) and the z, a and δ of
    the batch sizes of the current run. Make it, and call it, with the network's device
    current."""

    def __init__(
        self, sizes: Sequence[int], sigmas: Sequence[Activation], cost: Cost, xp: Any, dtype: np.dtype, block_bytes: int = 0
    ) -> None:
        self.layout = Layout(tuple(sizes))
        self.sigmas, self.cost, self.xp, self.dtype = list(sigmas), cost, xp, dtype
        self.block_bytes = block_bytes  # `backend.block_bytes` of the device; 0: no blocks
        self.grad = self.layout.zeros(xp, dtype)
        self.nabla_w, self.nabla_b = self.layout.split(self.layout.views(self.grad))
        self._batches: dict[int, list[_Layer]] = {}

    def keep(self, batch_sizes: set[int]) -> None:
        """Keep buffers for these batch sizes only (a run's m and its last batch's)."""
        self._batches = {m: b for m, b in self._batches.items() if m in batch_sizes}

    def _batch(self, m: int) -> list[_Layer]:
        if m not in self._batches:
            buffer = lambda n: self.xp.empty((n, m), dtype=self.dtype)  # noqa: E731
            sizes = self.layout.sizes[1:]
            blocks = [self._blocks(n, m) for n in sizes[:-1]] + [None]  # not the output layer: softmax is not elementwise
            layers = zip(sizes, self.nabla_w, self.nabla_b, self.sigmas, blocks)
            self._batches[m] = [_Layer(buffer(n), buffer(n), buffer(n), w, b, s, blocks=k) for n, w, b, s, k in layers]
        return self._batches[m]

    def _blocks(self, n: int, m: int) -> tuple[slice, ...] | None:
        """Row blocks of an `(n, m)` layer of at most `block_bytes` each, or None where one
        block would hold it all."""
        if not self.block_bytes or not m:  # m = 0: a rank's empty share of a short last batch
            return None
        rows = max(1, self.block_bytes // (m * self.dtype.itemsize))
        return tuple(slice(i, i + rows) for i in range(0, n, rows)) if rows < n else None

    def masks(self, m: int) -> list[Any]:
        """The dropout masks' buffers for mini-batches of m examples, one `(n, m)` per
        hidden layer (made on first use)."""
        layers = self._batch(m)
        for l, layer in enumerate(layers[:-1]):
            if layer.mask is None:
                layers[l] = dataclasses.replace(layer, mask=self.xp.empty_like(layer.a))
        return [layer.mask for layer in layers[:-1]]

    def backprop(
        self,
        weights: list[Any],
        biases: list[Any],
        x: Any,
        y: Any,
        scale: float,
        masks: list[Any] | None = None,
        weight: Any = None,
    ) -> Any:
        """BP1–BP4 over the m columns of `x` and `y`, for the gradient of the summed
        cost times `scale` (1/m gives the mean cost's; the training step folds η in too),
        written into `nabla_w` and `nabla_b`. Returns aᴸ, a buffer valid until the next call.

        With `masks` (one per hidden layer, from `masks`), each hidden activation is
        multiplied by its mask after σ, and BP2's δ by the same mask: the gradient of the
        thinned network.

        With `weight` (`(1, m)`, each example's weight), δᴸ of each example is multiplied
        by its weight too: the gradient of the weighted sum of the costs, times `scale`."""
        if masks is not None:
            return self._dropped(weights, biases, x, y, scale, masks, weight)
        matmul, layers = self.xp.matmul, self._batch(x.shape[1])
        # Feedforward, storing every z and every activation, layer by layer.
        activations = [x]
        for w, b, layer in zip(weights, biases, layers):
            z = matmul(w, activations[-1], out=layer.z)
            if layer.blocks is None:
                z += b
                activations.append(layer.sigma.into(z, out=layer.a))
            else:
                activations.append(self._activate(layer, z, b))
        # BP1, with the scale folded in once; BP2 carries it to every layer.
        last = layers[-1]
        delta = self.cost.delta(last.z, activations[-1], y, last.sigma, out=last.delta)  # BP1
        delta *= scale
        if weight is not None:
            delta *= weight
        for l in range(len(layers) - 1, -1, -1):
            layer = layers[l]
            if layer is not last:
                delta = matmul(weights[l + 1].T, delta, out=layer.delta)
                if layer.blocks is None:
                    # σ′(zˡ) is written over zˡ, which nothing needs after it.
                    delta *= layer.sigma.prime(layer.z, activations[l + 1], out=layer.z)  # BP2
            if layer.blocks is None:
                delta.sum(axis=1, keepdims=True, out=layer.nabla_b)  # BP3
            else:
                self._hidden_delta(layer, delta, activations[l + 1])  # BP2 and BP3, a block at a time
            matmul(delta, activations[l].T, out=layer.nabla_w)  # BP4
        return activations[-1]

    @staticmethod
    def _activate(layer: _Layer, z: Any, b: Any) -> Any:
        """z += b, then aˡ = σ(zˡ) into the layer's a, for a large hidden layer: a block of
        its rows at a time, each block hot in cache from the first operation to the last.
        The values are the same, elementwise, as over the whole layer at once."""
        assert layer.blocks is not None
        for rows in layer.blocks:
            zr = z[rows]
            zr += b[rows]
            layer.sigma.into(zr, out=layer.a[rows])
        return layer.a

    @staticmethod
    def _hidden_delta(layer: _Layer, delta: Any, a: Any) -> None:
        """BP2's Hadamard product and BP3 for a large hidden layer, given `delta` = wˡ⁺¹ᵀ δˡ⁺¹
        and its aˡ = σ(zˡ), a block of rows at a time as in `_activate`; σ′(zˡ) is written
        over zˡ, which nothing needs after it. Each row's sum is the same as over the whole."""
        assert layer.blocks is not None
        for rows in layer.blocks:
            d = delta[rows]
            d *= layer.sigma.prime(layer.z[rows], a[rows], out=layer.z[rows])  # BP2
            d.sum(axis=1, keepdims=True, out=layer.nabla_b[rows])  # BP3

    def _dropped(self, weights: list[Any], biases: list[Any], x: Any, y: Any, scale: float, masks: list[Any], weight: Any) -> Any:
        """`backprop` with dropout. σ′(zˡ) is taken in the forward pass, from σ(zˡ)
        before the mask thins it, and written over zˡ; the output layer has no mask and
        keeps its z for BP1."""
        matmul, layers = self.xp.matmul, self._batch(x.shape[1])
        activations = [x]
        for l, (w, b, layer) in enumerate(zip(weights, biases, layers)):
            z = matmul(w, activations[-1], out=layer.z)
            z += b
            a = layer.sigma.into(z, out=layer.a)
            if l < len(masks):
                layer.sigma.prime(z, a, out=z)
                a *= masks[l]  # the thinned activation, D ⊙ σ(z)
            activations.append(a)
        last = layers[-1]
        delta = self.cost.delta(last.z, activations[-1], y, last.sigma, out=last.delta)  # BP1
        delta *= scale
        if weight is not None:
            delta *= weight
        for l in range(len(layers) - 1, -1, -1):
            layer = layers[l]
            if layer is not last:
                delta = matmul(weights[l + 1].T, delta, out=layer.delta)
                delta *= layer.z  # BP2: ⊙ σ′(zˡ)
                delta *= masks[l]  # and ⊙ the mask
            delta.sum(axis=1, keepdims=True, out=layer.nabla_b)  # BP3
            matmul(delta, activations[l].T, out=layer.nabla_w)  # BP4
        return activations[-1]
