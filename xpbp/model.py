"""What a network is, apart from the values of its parameters: its configuration
(`Config`, what its files record) and the parts that compute with it
(`Model`: each layer's σ, the cost, the device). `xpbp.Network` owns
both; the trainer and the files get them as these records, never the network itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import tasks, validation
from .activations import Activation
from .costs import Cost

__all__ = ["CHUNK", "Config", "Model"]

CHUNK = 8192  # examples per forward pass when scoring or predicting, to bound device memory


@dataclass(frozen=True)
class Config:
    """What defines a network, apart from its parameters. `task` is None until the
    network is told it or infers it from the targets of its first `fit`."""

    sizes: tuple[int, ...]
    activation: str
    output_activation: str
    cost: str
    init: str
    dtype: str
    seed: int
    task: str | None = None


@dataclass(frozen=True)
class Model:
    """The parts of a network that compute: σ of each layer after the input, the cost,
    and the device (its name, its array module) and dtype that every array is made in."""

    sizes: tuple[int, ...]
    sigmas: tuple[Activation, ...]
    cost: Cost
    device: str
    xp: ModuleType
    dtype: np.dtype

    @property
    def inputs(self) -> validation.Inputs:
        return validation.Inputs(self.sizes, self.dtype, self.device)

    def forward(self, weights: list[Any], biases: list[Any], a: Any) -> Any:
        """The output activations for inputs `a` (examples as columns)."""
        for w, b, sigma in zip(weights, biases, self.sigmas):
            z = w @ a
            z += b  # z = w a + b
            a = sigma.fn(z, out=z)  # a = σ(z), over z
        return a

    def totals(self, weights: list[Any], biases: list[Any], task: tasks.Task, X: Any, targets: tasks.Targets) -> Any:
        """A 1-D array on the device: the summed cost over the rows of `X`, the number of
        rows whose outputs are not all finite, then the task's sums (`task.totals`)."""
        xp = self.xp
        total = xp.zeros(2 + task.width(self.sizes[-1]), dtype=self.dtype)
        for k in range(0, X.shape[0], CHUNK):
            part = targets.part(slice(k, k + CHUNK))
            a = self.forward(weights, biases, X[k : k + CHUNK].T)
            cost = self.cost.fn(a, part.Y.T).sum()
            bad = (~xp.isfinite(a)).any(axis=0).sum()
            total += xp.concatenate([xp.stack([cost, bad.astype(self.dtype)]), task.totals(a, part).astype(self.dtype)])
        return total
