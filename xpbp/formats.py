"""The two kinds of file xpbp writes, field by field: models and checkpoints.

Both are ``.npz`` archives written and read by :mod:`xpbp.files` (atomically, without
pickle) with a format name and a version. A read checks every field against the
format before it returns, so a caller that gets a result can apply it whole: nothing
is changed by a file that turns out to be bad half-way.

**Model**, format ``xpbp-model``, version 1 (:func:`write_model`, :func:`read_model`):

============================  ==========================================================
``sizes``                     int64, the layer widths, input first (at least two)
``activation``                str, σ of the hidden layers
``output_activation``         str, σ of the output layer
``cost``                      str, the cost function's name
``init``                      str, the initialisation the network was drawn with
``dtype``                     str, ``float32`` or ``float64``
``seed``                      int64, the network's seed
``w0`` … ``w{L-1}``           the weight matrices, ``(sizes[l+1], sizes[l])``, finite
``b0`` … ``b{L-1}``           the bias vectors, ``(sizes[l+1], 1)``, finite
============================  ==========================================================

**Checkpoint**, format ``xpbp-checkpoint``, version 2 (:func:`write_checkpoint`,
:func:`read_checkpoint`): the model's fields (the parameters after ``epoch``), then

============================  ==========================================================
``velocity``                  the momentum velocities, laid out like θ (only when μ > 0)
``epoch``                     int64, the epochs of the run done (1 … ``run_epochs``)
``epochs_trained``            int64, the network's epoch count, which seeds each shuffle
``run_<name>``                each setting of the run (``training.Run``); a setting
                              added in a later version is read with its default
``history_<name>``            float64, each list of the run's ``History``, ``epoch`` long
============================  ==========================================================

Version 1 checkpoints (velocities as ``v0`` … ``v{2L-1}``, no defaults) are refused
with a message saying they come from an older xpbp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import files

__all__ = ["Checkpoint", "Config", "ModelFile", "read_checkpoint", "read_model", "write_checkpoint", "write_model"]

MODEL = ("xpbp-model", 1)
CHECKPOINT = ("xpbp-checkpoint", 2)
_TEXT = ("activation", "output_activation", "cost", "init", "dtype")


@dataclass(frozen=True)
class Config:
    """What defines a network, apart from its parameters."""

    sizes: tuple[int, ...]
    activation: str
    output_activation: str
    cost: str
    init: str
    dtype: str
    seed: int

    def arrays(self) -> dict[str, np.ndarray]:
        return {"sizes": np.array(self.sizes, dtype=np.int64), **{k: np.array(getattr(self, k)) for k in _TEXT},
                "seed": np.array(self.seed, dtype=np.int64)}


@dataclass(frozen=True)
class ModelFile:
    """A model file's contents, checked: its configuration and host copies of its parameters."""

    config: Config
    weights: list[np.ndarray]
    biases: list[np.ndarray]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's contents: the model after ``epoch`` epochs of the run, the momentum
    velocities (flat, or None without momentum), the network's epoch count, the run's
    settings and its history so far."""

    model: ModelFile
    velocity: np.ndarray | None
    epoch: int
    epochs_trained: int
    run: dict[str, Any]
    history: dict[str, list[float]]


def _parameters(arrays: dict[str, np.ndarray], weights: list[np.ndarray], biases: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {**{f"w{l}": w for l, w in enumerate(weights)}, **{f"b{l}": b for l, b in enumerate(biases)}, **arrays}


def write_model(path: str | os.PathLike, model: ModelFile) -> None:
    files.write(path, *MODEL, _parameters(model.config.arrays(), model.weights, model.biases))


def read_model(path: str | os.PathLike) -> ModelFile:
    """The checked contents of a model file; ``ValueError`` naming the file and the problem."""
    return _model(path, files.read(path, *MODEL, what="xpbp model file"), "xpbp model file")


def _model(path: str | os.PathLike, data: dict[str, np.ndarray], what: str) -> ModelFile:
    try:
        config = Config(tuple(int(n) for n in data["sizes"]), *(str(data[k]) for k in _TEXT), int(data["seed"]))
    except KeyError as e:
        raise ValueError(f"{path} is a damaged {what}: {e.args[0]!r} is missing") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} is a damaged {what}: {e}") from None
    weights, biases = [], []
    for l, (n_in, n_out) in enumerate(zip(config.sizes[:-1], config.sizes[1:])):
        for name, want, out in ((f"w{l}", (n_out, n_in), weights), (f"b{l}", (n_out, 1), biases)):
            out.append(_array(path, data, name, want))
    return ModelFile(config, weights, biases)


def _array(path: str | os.PathLike, data: dict[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in data:
        raise ValueError(f"{path} is damaged: {name!r} is missing")
    if data[name].shape != shape:
        raise ValueError(f"{path} is damaged: {name} has shape {data[name].shape}, expected {shape}")
    if data[name].dtype.kind != "f" or not np.isfinite(data[name]).all():
        raise ValueError(f"{path} is damaged: {name} is not finite floating-point data")
    return data[name]


def write_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> None:
    arrays = {"epoch": np.array(checkpoint.epoch, dtype=np.int64),
              "epochs_trained": np.array(checkpoint.epochs_trained, dtype=np.int64)}
    if checkpoint.velocity is not None:
        arrays["velocity"] = checkpoint.velocity
    arrays.update({f"run_{k}": np.array(v) for k, v in checkpoint.run.items()})
    arrays.update({f"history_{k}": np.array(v, dtype=np.float64) for k, v in checkpoint.history.items()})
    files.write(path, *CHECKPOINT, _parameters({**checkpoint.model.config.arrays(), **arrays},
                                              checkpoint.model.weights, checkpoint.model.biases))


def read_checkpoint(path: str | os.PathLike, config: Config, run: dict[str, Any], defaults: dict[str, Any],
                    history: tuple[str, ...]) -> Checkpoint:
    """The checked contents of a checkpoint of a network configured as ``config`` (its seed
    aside), written by a run with the settings ``run`` (those missing from the file are
    taken from ``defaults``), holding the lists named in ``history``. ``ValueError``
    naming the file and the first mismatch or damage."""
    what = "xpbp checkpoint"
    data = files.read(path, *CHECKPOINT, what=what)
    model = _model(path, data, what)
    for key, value in vars(config).items():
        if key != "seed" and getattr(model.config, key) != value:
            raise ValueError(f"{path} is a checkpoint of another network ({key} {getattr(model.config, key)} there, {value} here)")
    for key, value in run.items():
        if f"run_{key}" not in data and key not in defaults:
            raise ValueError(f"{path} is a damaged {what}: 'run_{key}' is missing")
        theirs = data[f"run_{key}"].item() if f"run_{key}" in data else defaults[key]
        if theirs != value:
            raise ValueError(f"{path} was written by a run with {key}={theirs}, this one has {key}={value}")
    try:
        epoch, epochs_trained = int(data["epoch"]), int(data["epochs_trained"])
        lists = {k: data[f"history_{k}"].astype(np.float64).tolist() for k in history}
    except KeyError as e:
        raise ValueError(f"{path} is a damaged {what}: {e.args[0]!r} is missing") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} is a damaged {what}: {e}") from None
    if not 1 <= epoch <= run["epochs"] or epochs_trained < epoch or any(len(v) not in (0, epoch) for v in lists.values()):
        raise ValueError(f"{path} is a damaged {what}: epoch {epoch}, {epochs_trained} trained, and histories disagree")
    velocity = None
    if run.get("momentum"):
        size = sum(w.size + b.size for w, b in zip(model.weights, model.biases))
        velocity = _array(path, data, "velocity", (size,))
    return Checkpoint(model, velocity, epoch, epochs_trained, {k: v for k, v in run.items()}, lists)
