"""The two kinds of file xpbp writes, field by field: models and checkpoints.

Both are `.npz` archives written and read by `xpbp.files` (atomically, without
pickle, each member checked from its header before its data is read) with a format
name and a version. A read checks every field against the format before it returns,
so that a caller that gets a result can apply it whole: nothing is changed by a file
that turns out to be bad half-way. A member the format does not name is refused.

**Model**, format `xpbp-model`, version 4 (`write_model`, `read_model`;
versions 1 to 3 are read too: version 2 added `trained_on`, version 3 `task`, version 4
`classes` and the scaling; networks from files without a task are classifiers, as every
network was then). The page "The model file" of the docs shows a forward pass reading it
with NumPy alone:

| member | contents |
|---|---|
| `sizes` | int64, the layer widths, input first (2 to 1001 of them) |
| `activation` | str, σ of the hidden layers |
| `output_activation` | str, σ of the output layer |
| `cost` | str, the cost function's name |
| `init` | str, the initialisation the network was drawn with |
| `dtype` | str, `float32` or `float64` |
| `seed` | int64, the network's seed |
| `task` | str, optional: `classification`, `multilabel` or `regression` (absent for a network not trained or told yet) |
| `w0` … `w{L-1}` | the weight matrices, `(sizes[l+1], sizes[l])`, finite in `dtype` |
| `b0` … `b{L-1}` | the bias vectors, `(sizes[l+1], 1)`, finite in `dtype` |
| `trained_on` | str, optional: the data the network was trained on, as `"<data set>:<split>"` (`xpbp train` records it) |
| `classes` | str, optional, `(k,)`: the label of each class index |
| `scaling` | str, optional: `standard` or `minmax`, the kind of the input scaling |
| `scaling_offset`, `scaling_scale` | float64 `(sizes[0],)` each, with `scaling`: the input is (x − offset) / scale |
| `target_offset`, `target_scale` | float64 `(sizes[-1],)` each, optional: a regression predicts output · scale + offset |

**Checkpoint**, format `xpbp-checkpoint`, version 3 (`write_checkpoint`,
`read_checkpoint`): the model's fields (the parameters after `epoch`), then

| member | contents |
|---|---|
| `epoch` | int64, the epochs of the run done (1 … `run_epochs`) |
| `epochs_trained` | int64, the network's epoch count, which keys each epoch's shuffle and dropout masks (with the seed) |
| `run_<name>` | each setting of the run (`runs.Run`); a setting added in a later version is read with its default |
| `optimizer` | str, the optimizer's name (`optimizers.Spec`) |
| `optimizer_<name>` | each of its settings |
| `optimizer_step` | int64, the updates it has made |
| `state_<slot>` | each of its state buffers, laid out like θ (SGD's `velocity` with momentum; Adam's `m` and `v`) |
| `history_<name>` | float64, each list of the run's `History`, `epoch` long or empty (validation lists, without validation) |
| `history_best_epoch` | int64, the epoch early stopping keeps (0: none) |
| `history_stopped_early` | bool, whether early stopping ended the run |
| `watch_best`, `watch_best_epoch`, `watch_since`, `watch_halvings` | early stopping's and η halving's state (`stopping.Watch`) |
| `best_theta` | θ of the best epoch, flat (only with early stopping or η halving) |
| `data_train` | uint64, a fingerprint of the training data (X and targets) |
| `data_validation` | uint64, one of the validation data (only when given apart) |

Version 2 checkpoints (SGD's velocity as `velocity`, the momentum as `run_momentum`,
no optimizer, early-stopping or task fields) resume as the runs they were: SGD with that
momentum, a classification. Version 1 checkpoints (velocities as `v0` … `v{2L-1}`, no
fingerprints) are refused with a message saying they come from an older xpbp.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import files, optimizers, tasks, validation
from .model import Config
from .runs import Fingerprints, History, Run, State
from .scaling import Scaling
from .stopping import Watch
from .workspace import Layout

__all__ = ["Checkpoint", "Identity", "ModelFile", "read_checkpoint", "read_model", "write_checkpoint", "write_model"]

MODEL = ("xpbp-model", 4)
_MODELS_READ = (1, 2, 3, 4)  # 2 added trained_on, 3 task, 4 classes and scaling
_MAX_CLASSES = 1 << 20
_EXTRAS = {
    "trained_on",
    "classes",
    "scaling",
    "scaling_offset",
    "scaling_scale",
    "target_offset",
    "target_scale",
}  # a model's optional members
CHECKPOINT = ("xpbp-checkpoint", 3)
_CHECKPOINTS_READ = (2, 3)
_TEXT = ("activation", "output_activation", "cost", "init", "dtype")
_MAX_LAYERS = 1000
_DATA = {"data_train": "training", "data_validation": "validation"}  # the fingerprints a checkpoint may hold
_RUN = {f.name: f for f in dataclasses.fields(Run)}
_WATCH = tuple(f.name for f in dataclasses.fields(Watch))


@dataclass(frozen=True)
class ModelFile:
    """A model file's contents, checked: its configuration, host copies of its
    parameters in the configuration's dtype, what it was trained on, if known, its
    classes' labels and its input scaling, if any."""

    config: Config
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    trained_on: str | None = None
    classes: tuple[str, ...] | None = None
    scaling: Scaling | None = None
    target_scaling: Scaling | None = None


@dataclass(frozen=True)
class Identity:
    """What a checkpoint records of its run, and what a run must match to resume from it:
    the network's configuration (its seed aside), the run's settings, the optimizer's,
    and the fingerprints of the run's data."""

    config: Config
    run: Run
    optimizer: optimizers.Spec
    data: Fingerprints


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's contents: the run it is of, and where that run stood."""

    identity: Identity
    state: State


# ---------------------------------------------------------------------- models


def _config_arrays(config: Config) -> dict[str, np.ndarray]:
    arrays = {
        "sizes": np.array(config.sizes, dtype=np.int64),
        **{k: np.array(getattr(config, k)) for k in _TEXT},
        "seed": np.array(config.seed, dtype=np.int64),
    }
    if config.task is not None:
        arrays["task"] = np.array(config.task)
    return arrays


def _names(config: Config) -> set[str]:
    """The members of a model file of this configuration."""
    L = len(config.sizes) - 1
    return {"format", "version", "sizes", "seed", "task", *_TEXT, *(f"w{l}" for l in range(L)), *(f"b{l}" for l in range(L))}


def _parameters(arrays: dict[str, np.ndarray], weights: list[np.ndarray], biases: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {**{f"w{l}": w for l, w in enumerate(weights)}, **{f"b{l}": b for l, b in enumerate(biases)}, **arrays}


def write_model(path: str | os.PathLike, model: ModelFile) -> None:
    known: dict[str, np.ndarray] = {}
    if model.trained_on is not None:
        known["trained_on"] = np.array(model.trained_on)
    if model.classes is not None:
        known["classes"] = np.array(model.classes, dtype=str)
    if model.scaling is not None:
        known.update(scaling=np.array(model.scaling.kind), scaling_offset=model.scaling.offset, scaling_scale=model.scaling.scale)
    if model.target_scaling is not None:
        known.update(target_offset=model.target_scaling.offset, target_scale=model.target_scaling.scale)
    files.write(path, *MODEL, _parameters({**_config_arrays(model.config), **known}, model.weights, model.biases))


def read_model(path: str | os.PathLike) -> ModelFile:
    """The checked contents of a model file; `ValueError` naming the file and the problem."""
    with files.Archive(path, "xpbp model file") as archive:
        config = _header(archive, MODEL[0], _MODELS_READ)
        archive.only(_names(config) | _EXTRAS)
        weights, biases = _model(archive, config)
        trained_on = archive.scalar("trained_on", "U") if "trained_on" in archive.names else None
        return ModelFile(
            config, weights, biases, trained_on, _classes(archive, config), _scaling(archive, config), _target(archive, config)
        )


def _classes(archive: files.Archive, config: Config) -> tuple[str, ...] | None:
    if "classes" not in archive.names:
        return None
    labels = archive.array("classes", "U", longest=_MAX_CLASSES)
    if labels.ndim != 1 or len(labels) < 2 or len(set(labels.tolist())) != len(labels):
        raise archive.error("classes must be two or more distinct labels")
    if len(labels) != max(config.sizes[-1], 2):
        raise archive.error(f"it has {len(labels)} class labels for an output layer of {config.sizes[-1]}")
    return tuple(str(c) for c in labels)


def _target(archive: files.Archive, config: Config) -> Scaling | None:
    members = {"target_offset", "target_scale"} & archive.names
    if not members:
        return None
    if len(members) < 2:
        raise archive.error(f"its target scaling lacks {', '.join(sorted({'target_offset', 'target_scale'} - members))}")
    n = config.sizes[-1]
    offset, scale = (archive.array(k, "f", (n,)).astype(np.float64) for k in ("target_offset", "target_scale"))
    try:
        return Scaling("standard", offset, scale)
    except ValueError as e:
        raise archive.error(str(e)) from None


def _scaling(archive: files.Archive, config: Config) -> Scaling | None:
    members = {"scaling", "scaling_offset", "scaling_scale"} & archive.names
    if not members:
        return None
    if len(members) < 3:
        raise archive.error(f"its scaling lacks {', '.join(sorted({'scaling', 'scaling_offset', 'scaling_scale'} - members))}")
    n = config.sizes[0]
    kind = archive.scalar("scaling", "U")
    offset, scale = (archive.array(k, "f", (n,)).astype(np.float64) for k in ("scaling_offset", "scaling_scale"))
    try:
        return Scaling(kind, offset, scale)
    except ValueError as e:
        raise archive.error(str(e)) from None


def _header(archive: files.Archive, format: str, versions: tuple[int, ...]) -> Config:
    """The format marker, checked, then the configuration (a classification's, for a
    file written before networks knew their task)."""
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
    task = archive.scalar("task", "U") if "task" in archive.names else None
    if task is None and found < versions[-1]:
        task = "classification"
    config = Config(tuple(int(n) for n in sizes), **dict(zip(_TEXT, text)), seed=archive.scalar("seed", "iu"), task=task)
    try:
        validation.dtype(config.dtype)
        validation.seed(config.seed)
    except ValueError as e:
        raise archive.error(str(e)) from None
    if task is not None and task not in tasks.TASKS:
        raise archive.error(f"task {task!r} is not one of {', '.join(map(repr, tasks.TASKS))}")
    return config


def _model(archive: files.Archive, config: Config) -> tuple[list[np.ndarray], list[np.ndarray]]:
    weights, biases = [], []
    for l, (n_in, n_out) in enumerate(zip(config.sizes[:-1], config.sizes[1:])):
        weights.append(_floats(archive, f"w{l}", (n_out, n_in), config.dtype))
        biases.append(_floats(archive, f"b{l}", (n_out, 1), config.dtype))
    return weights, biases


def _floats(archive: files.Archive, name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Member `name` in `dtype`, refused when it is not finite there (also when a
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


# ---------------------------------------------------------------------- checkpoints


def write_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> None:
    identity, state = checkpoint.identity, checkpoint.state
    spec, layout = identity.optimizer, Layout(identity.config.sizes)
    arrays: dict[str, np.ndarray] = {
        "epoch": np.array(state.epoch, dtype=np.int64),
        "epochs_trained": np.array(state.epochs_trained, dtype=np.int64),
        "optimizer": np.array(spec.name),
        "optimizer_step": np.array(state.step, dtype=np.int64),
        **{f"optimizer_{k}": np.array(v) for k, v in spec.settings},
        **{f"state_{k}": v for k, v in zip(spec.make().slots, state.slots)},
        **{f"run_{k}": np.array(getattr(identity.run, k)) for k in _RUN},
        **{f"history_{k}": np.array(getattr(state.history, k), dtype=np.float64) for k in History.lists()},
        "history_best_epoch": np.array(state.history.best_epoch or 0, dtype=np.int64),
        "history_stopped_early": np.array(state.history.stopped_early),
        **{f"watch_{k}": np.array(getattr(state.watch, k)) for k in _WATCH},
    }
    if state.best is not None:
        arrays["best_theta"] = state.best
    arrays["data_train"] = np.array(identity.data.train, dtype=np.uint64)
    if identity.data.validation is not None:
        arrays["data_validation"] = np.array(identity.data.validation, dtype=np.uint64)
    config = dataclasses.replace(identity.config, seed=state.seed)
    files.write(path, *CHECKPOINT, _parameters({**_config_arrays(config), **arrays}, *layout.split(layout.views(state.theta))))


def read_checkpoint(path: str | os.PathLike, identity: Identity) -> State:
    """Where the run `identity` describes stood when its checkpoint at `path` was
    written, checked whole; `ValueError` naming the file and the first mismatch or damage."""
    with files.Archive(path, "xpbp checkpoint") as archive:
        config = _header(archive, CHECKPOINT[0], _CHECKPOINTS_READ)
        version = archive.scalar("version", "iu")
        slots = identity.optimizer.make().slots
        _same_optimizer(archive, identity.optimizer, version)  # first: another optimizer has other members
        archive.only(_names(config) | _checkpoint_names(identity, slots, version))
        for key, value in vars(identity.config).items():
            if key != "seed" and getattr(config, key) != value:
                raise ValueError(f"{path} is a checkpoint of another network ({key} {getattr(config, key)} there, {value} here)")
        _same_run(archive, identity.run)
        _same_data(archive, identity.data)
        weights, biases = _model(archive, config)
        theta = np.concatenate([p.ravel() for p in weights + biases])
        return _progress(archive, identity, config, theta, slots, version)


def _checkpoint_names(identity: Identity, slots: tuple[str, ...], version: int) -> set[str]:
    """The members a checkpoint of this run may hold, beyond its model's."""
    common = {"epoch", "epochs_trained", *(f"run_{k}" for k in _RUN), *(f"history_{k}" for k in History.lists()), *_DATA}
    if version == 2:
        return common | {"velocity", "run_momentum"}
    return common | {
        "optimizer",
        "optimizer_step",
        *(f"optimizer_{k}" for k, _ in identity.optimizer.settings),
        *(f"state_{k}" for k in slots),
        "history_best_epoch",
        "history_stopped_early",
        *(f"watch_{k}" for k in _WATCH),
        "best_theta",
    }


def _best(archive: files.Archive, run: Run, theta: np.ndarray, config: Config) -> np.ndarray | None:
    """The best epoch's θ, which a run that watches a validation score keeps. A run that only
    halved η was written without it before xpbp kept the best epoch for it too: it resumes
    keeping the parameters it had then as its best."""
    if not run.watching:
        return None
    if "best_theta" not in archive.names and not run.early_stopping:
        return theta.copy()
    return _floats(archive, "best_theta", theta.shape, config.dtype)


def _scalar_of(archive: files.Archive, name: str, like: Any) -> Any:
    """Member `name`, one value of the kind of `like`."""
    if isinstance(like, (bool, np.bool_)):
        return archive.scalar(name, "b")
    if isinstance(like, str):
        return archive.scalar(name, "U")
    return archive.scalar(name, "iu" if isinstance(like, int) else "fiu")


def _same_run(archive: files.Archive, run: Run) -> None:
    for key, f in _RUN.items():
        value = getattr(run, key)
        has_default = f.default is not dataclasses.MISSING
        theirs = f.default if f"run_{key}" not in archive.names and has_default else _scalar_of(archive, f"run_{key}", value)
        if theirs != value:
            raise ValueError(f"{archive.path} was written by a run with {key}={theirs}, this one has {key}={value}")


def _same_optimizer(archive: files.Archive, spec: optimizers.Spec, version: int) -> None:
    if version == 2:  # SGD, its momentum a setting of the run
        momentum = archive.scalar("run_momentum", "fiu") if "run_momentum" in archive.names else 0.0
        theirs = optimizers.Spec("sgd", (("momentum", float(momentum)), ("nesterov", False)))
    else:
        name = archive.scalar("optimizer", "U")
        if name != spec.name:
            raise ValueError(f"{archive.path} was written by a run with optimizer {name!r}, this one has {spec.name!r}")
        theirs = optimizers.Spec(name, tuple((k, _scalar_of(archive, f"optimizer_{k}", v)) for k, v in spec.settings))
    if theirs != spec:
        raise ValueError(f"{archive.path} was written by a run with the optimizer {theirs}, this one has {spec}")


def _same_data(archive: files.Archive, data: Fingerprints) -> None:
    for key, what in _DATA.items():
        theirs = archive.scalar(key, "u") if key in archive.names else None
        if theirs != getattr(data, key[5:]):
            raise ValueError(
                f"{archive.path} was written by a run on other {what} data: this run's differs in its values, order or presence"
            )


def _progress(
    archive: files.Archive, identity: Identity, config: Config, theta: np.ndarray, slots: tuple[str, ...], version: int
) -> State:
    """The rest of a checkpoint, after its model: where the run stands."""
    run = identity.run
    epoch, epochs_trained = archive.scalar("epoch", "iu"), archive.scalar("epochs_trained", "iu")
    if not 1 <= epoch <= run.epochs or not epoch <= epochs_trained < 2**62:
        raise archive.error(f"it stands at epoch {epoch} of {run.epochs} with {epochs_trained} trained")
    history = _history(archive, epoch, version)
    if version == 2:
        step, names, watch, best = 0, ["velocity"] if slots else [], Watch(), None
    else:
        step = archive.scalar("optimizer_step", "iu")
        names, watch = [f"state_{k}" for k in slots], _watch(archive, epoch)
        best = _best(archive, run, theta, config)
    found = tuple(_floats(archive, name, theta.shape, config.dtype) for name in names)
    if not 0 <= step < 2**62:
        raise archive.error(f"its optimizer_step {step} is out of range")
    return State(epoch, epochs_trained, config.seed, theta, step, found, history, watch, best)


def _history(archive: files.Archive, epoch: int, version: int) -> History:
    lists: dict[str, list[float]] = {}
    for k in History.lists():
        name = f"history_{k}"
        if name not in archive.names and version == 2 and k in ("val_rmse", "val_r2"):
            lists[k] = []  # a version 2 run was a classification
            continue
        values = archive.array(name, "f", longest=epoch)
        if values.ndim != 1:
            raise archive.error(f"{name} is not a list (it has shape {values.shape})")
        lists[k] = values.astype(np.float64).tolist()
    # Every epoch has a training cost and a time; the validation lists are empty without validation data.
    if any(len(v) != epoch if k in ("train_cost", "seconds") else len(v) not in (0, epoch) for k, v in lists.items()):
        raise archive.error(f"its history's lists are not {epoch} long, one per epoch done")
    history = History()
    for k, v in lists.items():
        getattr(history, k).extend(v)
    if version == 2:
        return history
    best = archive.scalar("history_best_epoch", "iu")
    if not 0 <= best <= epoch:
        raise archive.error(f"its history_best_epoch {best} is not an epoch done")
    history.best_epoch, history.stopped_early = best or None, archive.scalar("history_stopped_early", "b")
    return history


def _watch(archive: files.Archive, epoch: int) -> Watch:
    watch = Watch(
        best=archive.scalar("watch_best", "f"),
        best_epoch=archive.scalar("watch_best_epoch", "iu"),
        since=archive.scalar("watch_since", "iu"),
        halvings=archive.scalar("watch_halvings", "iu"),
    )
    if not (0 <= watch.best_epoch <= epoch and 0 <= watch.since <= epoch and 0 <= watch.halvings <= epoch):
        raise archive.error(f"its early-stopping state {watch} does not fit {epoch} epochs done")
    return watch
