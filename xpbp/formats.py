"""The two kinds of file xpbp writes, field by field: models and checkpoints.

Both are ``.npz`` archives written and read by :mod:`xpbp.files` (atomically, without
pickle, each member checked from its header before its data is read) with a format
name and a version. A read checks every field against the format before it returns,
so that a caller that gets a result can apply it whole: nothing is changed by a file
that turns out to be bad half-way. A member the format does not name is refused.

**Model**, format ``xpbp-model``, version 2 (:func:`write_model`, :func:`read_model`; version 1
files, the same without ``trained_on``, are read too):

============================  ==========================================================
``sizes``                     int64, the layer widths, input first (2 to 1001 of them)
``activation``                str, σ of the hidden layers
``output_activation``         str, σ of the output layer
``cost``                      str, the cost function's name
``init``                      str, the initialisation the network was drawn with
``dtype``                     str, ``float32`` or ``float64``
``seed``                      int64, the network's seed
``w0`` … ``w{L-1}``           the weight matrices, ``(sizes[l+1], sizes[l])``, finite in ``dtype``
``b0`` … ``b{L-1}``           the bias vectors, ``(sizes[l+1], 1)``, finite in ``dtype``
``trained_on``                str, optional: the data the network was trained on, as
                              ``"<data set>:<split>"`` (``xpbp train`` records it)
============================  ==========================================================

**Checkpoint**, format ``xpbp-checkpoint``, version 2 (:func:`write_checkpoint`,
:func:`read_checkpoint`): the model's fields (the parameters after ``epoch``), then

============================  ==========================================================
``velocity``                  the momentum velocities, laid out like θ (only when μ > 0)
``epoch``                     int64, the epochs of the run done (1 … ``run_epochs``)
``epochs_trained``            int64, the network's epoch count, which seeds each shuffle
``run_<name>``                each setting of the run (``runs.Run``); a setting
                              added in a later version is read with its default
``history_<name>``            float64, each list of the run's ``History``, ``epoch`` long
                              (the validation lists empty without validation data)
``data_train``                uint64, a fingerprint of the training data (X and targets)
``data_validation``           uint64, one of the validation data (only when there is some)
============================  ==========================================================

Version 1 checkpoints (velocities as ``v0`` … ``v{2L-1}``, no fingerprints) are refused
with a message saying they come from an older xpbp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import files, validation

__all__ = ["Checkpoint", "Config", "Identity", "ModelFile", "read_checkpoint", "read_model", "write_checkpoint", "write_model"]

MODEL = ("xpbp-model", 2)
_MODELS_READ = (1, 2)  # version 2 added trained_on
CHECKPOINT = ("xpbp-checkpoint", 2)
_TEXT = ("activation", "output_activation", "cost", "init", "dtype")
_MAX_LAYERS = 1000
_DATA = {"data_train": "training", "data_validation": "validation"}  # the fingerprints a checkpoint may hold


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
        return {
            "sizes": np.array(self.sizes, dtype=np.int64),
            **{k: np.array(getattr(self, k)) for k in _TEXT},
            "seed": np.array(self.seed, dtype=np.int64),
        }

    def names(self) -> set[str]:
        """The members of a model file of this configuration."""
        L = len(self.sizes) - 1
        return {"format", "version", "sizes", "seed", *_TEXT, *(f"w{l}" for l in range(L)), *(f"b{l}" for l in range(L))}


@dataclass(frozen=True)
class ModelFile:
    """A model file's contents, checked: its configuration, host copies of its
    parameters in the configuration's dtype, and what it was trained on, if known."""

    config: Config
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    trained_on: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's contents: the model after ``epoch`` epochs of the run, the momentum
    velocities (flat, or None without momentum), the network's epoch count, the run's
    settings, its history so far, and the fingerprints of its data."""

    model: ModelFile
    velocity: np.ndarray | None
    epoch: int
    epochs_trained: int
    run: dict[str, Any]
    history: dict[str, list[float]]
    data: dict[str, int]


@dataclass(frozen=True)
class Identity:
    """What a checkpoint must match to resume a run: the network's configuration (its
    seed aside), the run's settings (``defaults`` stands in for those a file written
    before they existed lacks), the names of the history's lists, and the fingerprints
    of the run's data (``data_train``, ``data_validation``)."""

    config: Config
    run: dict[str, Any]
    defaults: dict[str, Any]
    history: tuple[str, ...]
    data: dict[str, int]


def write_model(path: str | os.PathLike, model: ModelFile) -> None:
    known = {"trained_on": np.array(model.trained_on)} if model.trained_on is not None else {}
    files.write(path, *MODEL, _parameters({**model.config.arrays(), **known}, model.weights, model.biases))


def _parameters(arrays: dict[str, np.ndarray], weights: list[np.ndarray], biases: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {**{f"w{l}": w for l, w in enumerate(weights)}, **{f"b{l}": b for l, b in enumerate(biases)}, **arrays}


def read_model(path: str | os.PathLike) -> ModelFile:
    """The checked contents of a model file; ``ValueError`` naming the file and the problem."""
    with files.Archive(path, "xpbp model file") as archive:
        config = _header(archive, MODEL[0], _MODELS_READ)
        archive.only(config.names() | {"trained_on"})
        model = _model(archive, config)
        trained_on = archive.scalar("trained_on", "U") if "trained_on" in archive.names else None
        return ModelFile(model.config, model.weights, model.biases, trained_on)


def _header(archive: files.Archive, format: str, versions: tuple[int, ...]) -> Config:
    """The format marker, checked, then the configuration."""
    if "format" not in archive.names or archive.scalar("format", "U") != format:
        raise ValueError(f"{archive.path} is not an {archive.what} (no format {format!r} marker)")
    found = archive.scalar("version", "iu")
    if found not in versions:
        older = " (written by an older xpbp)" if found < min(versions) else ""
        raise ValueError(
            f"{archive.path} has {archive.what} format version {found}{older}; "
            f"this xpbp reads version {' or '.join(map(str, versions))}"
        )
    sizes = archive.array("sizes", "iu", longest=_MAX_LAYERS + 1)
    if sizes.ndim != 1 or len(sizes) < 2 or (sizes < 1).any() or (sizes > 2**31).any():
        raise archive.error(f"sizes {sizes.tolist()} are not the widths of two or more layers")
    text = [archive.scalar(k, "U") for k in _TEXT]
    config = Config(tuple(int(n) for n in sizes), **dict(zip(_TEXT, text)), seed=archive.scalar("seed", "iu"))
    try:
        validation.dtype(config.dtype)
        validation.seed(config.seed)
    except ValueError as e:
        raise archive.error(str(e)) from None
    return config


def _model(archive: files.Archive, config: Config) -> ModelFile:
    weights, biases = [], []
    for l, (n_in, n_out) in enumerate(zip(config.sizes[:-1], config.sizes[1:])):
        weights.append(_floats(archive, f"w{l}", (n_out, n_in), config.dtype))
        biases.append(_floats(archive, f"b{l}", (n_out, 1), config.dtype))
    return ModelFile(config, weights, biases)


def _floats(archive: files.Archive, name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Member ``name`` in ``dtype``, refused when it is not finite there (also when a
    narrowing cast overflows)."""
    stored = archive.array(name, "f", shape)
    with np.errstate(over="ignore"):
        a = stored.astype(dtype)
    if not np.isfinite(a).all():
        beyond = np.isfinite(stored).all()
        raise ValueError(
            f"{archive.path} is damaged: {name} "
            + (f"holds values beyond the range of {dtype}" if beyond else "is not finite floating-point data")
        )
    return a


def write_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> None:
    arrays = {
        "epoch": np.array(checkpoint.epoch, dtype=np.int64),
        "epochs_trained": np.array(checkpoint.epochs_trained, dtype=np.int64),
    }
    if checkpoint.velocity is not None:
        arrays["velocity"] = checkpoint.velocity
    arrays.update({f"run_{k}": np.array(v) for k, v in checkpoint.run.items()})
    arrays.update({f"history_{k}": np.array(v, dtype=np.float64) for k, v in checkpoint.history.items()})
    arrays.update({k: np.array(v, dtype=np.uint64) for k, v in checkpoint.data.items()})
    files.write(
        path,
        *CHECKPOINT,
        _parameters({**checkpoint.model.config.arrays(), **arrays}, checkpoint.model.weights, checkpoint.model.biases),
    )


def read_checkpoint(path: str | os.PathLike, identity: Identity) -> Checkpoint:
    """The checked contents of a checkpoint of the run ``identity`` describes;
    ``ValueError`` naming the file and the first mismatch or damage."""
    with files.Archive(path, "xpbp checkpoint") as archive:
        config = _header(archive, CHECKPOINT[0], (CHECKPOINT[1],))
        archive.only(
            config.names()
            | {
                "velocity",
                "epoch",
                "epochs_trained",
                *(f"run_{k}" for k in identity.run),
                *(f"history_{k}" for k in identity.history),
                *_DATA,
            }
        )
        for key, value in vars(identity.config).items():
            if key != "seed" and getattr(config, key) != value:
                raise ValueError(f"{path} is a checkpoint of another network ({key} {getattr(config, key)} there, {value} here)")
        for key, value in identity.run.items():
            theirs = (
                identity.defaults[key]
                if f"run_{key}" not in archive.names and key in identity.defaults
                else archive.scalar(f"run_{key}", "b" if isinstance(value, bool) else "iu" if isinstance(value, int) else "fiu")
            )
            if theirs != value:
                raise ValueError(f"{path} was written by a run with {key}={theirs}, this one has {key}={value}")
        for key, what in _DATA.items():
            theirs = archive.scalar(key, "u") if key in archive.names else None
            if theirs != identity.data.get(key):
                raise ValueError(
                    f"{path} was written by a run on other {what} data: this run's differs in its values, order or presence"
                )
        return _progress(archive, identity, _model(archive, config))


def _progress(archive: files.Archive, identity: Identity, model: ModelFile) -> Checkpoint:
    """The rest of a checkpoint, after its model: where the run stands."""
    epoch, epochs_trained = archive.scalar("epoch", "iu"), archive.scalar("epochs_trained", "iu")
    if not 1 <= epoch <= identity.run["epochs"] or not epoch <= epochs_trained < 2**62:
        raise archive.error(f"it stands at epoch {epoch} of {identity.run['epochs']} with {epochs_trained} trained")
    lists = {k: archive.array(f"history_{k}", "f", longest=epoch).astype(np.float64).tolist() for k in identity.history}
    # Every epoch has a training cost and a time; the validation lists are empty without validation data.
    if any(len(v) != epoch if k in ("train_cost", "seconds") else len(v) not in (0, epoch) for k, v in lists.items()):
        raise archive.error(f"its history's lists are not {epoch} long, one per epoch done")
    velocity = None
    if identity.run.get("momentum"):
        size = sum(w.size + b.size for w, b in zip(model.weights, model.biases))
        velocity = _floats(archive, "velocity", (size,), model.config.dtype)
    return Checkpoint(model, velocity, epoch, epochs_trained, dict(identity.run), lists, dict(identity.data))
