"""One run of `fit`, described: what it is given, each part checked before any work
starts (`Run`, `Data`, `Execution`, together a `Plan`), where
it stands after an epoch (`State`, what a checkpoint saves), and what it gives
back (`History`) or why it stopped (`DivergenceError`,
`DeviceMemoryError`). `xpbp.training` carries a run out.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backend, draws, optimizers, regularization, stopping, tasks, validation
from .distributed import Group, agreeing
from .model import Config, Model
from .threads import threads_for
from .validation import positive_int, real

__all__ = [
    "Data",
    "DeviceMemoryError",
    "DivergenceError",
    "Execution",
    "Fingerprints",
    "Held",
    "History",
    "Plan",
    "Run",
    "State",
]


@dataclass
class History:
    """What `fit` saw, one entry per epoch in each list. The validation lists stay
    empty without validation data, and hold only the task's scores: a classification's
    `val_accuracy`, a regression's `val_rmse` and `val_r2`.

    `train_cost` is the mean cost of the epoch's mini-batches, each evaluated as
    it was trained on (so it costs no extra pass over the data, and with dropout it is
    the cost of the thinned networks), plus the regularisation term at the epoch's end
    (½(λ/N)Σ‖w‖² for L2, (λ/N)Σ|w| for L1) when λ > 0.

    `best_epoch` is the epoch whose parameters early stopping kept (None without it);
    `stopped_early` says whether it ended the run before `epochs`.
    """

    train_cost: list[float] = field(default_factory=list)
    val_cost: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_rmse: list[float] = field(default_factory=list)
    val_r2: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    @staticmethod
    def lists() -> tuple[str, ...]:
        """The names of the per-epoch lists."""
        return tuple(f.name for f in dataclasses.fields(History) if f.name not in ("best_epoch", "stopped_early"))

    def metrics(self) -> list[str]:
        """The names of the lists that hold entries."""
        return [name for name in self.lists() if getattr(self, name)]


class DivergenceError(ArithmeticError):
    """Training produced a NaN or Inf cost or parameter. The network keeps the last
    finite parameters; `epoch` and `batch` (1-based, None when the replay could not
    pin it down) say where, `history` holds the epochs completed before."""

    def __init__(self, message: str, *, epoch: int, batch: int | None, history: History) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.history = epoch, batch, history

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole, so that it crosses process pools
        return _divergence, (str(self), self.epoch, self.batch, self.history)


def _divergence(message: str, epoch: int, batch: int | None, history: History) -> DivergenceError:
    return DivergenceError(message, epoch=epoch, batch=batch, history=history)


class DeviceMemoryError(MemoryError):
    """The device ran out of memory during training; the message names the batch size
    and the layer sizes."""


@dataclass(frozen=True)
class Run:
    """The settings of one call of `fit` (the optimizer's apart: `Plan`): what its
    checkpoints record, and what a run resumed from one must match. A setting added later
    gets a default here, so that checkpoints written before it still resume.
    `examples` is N, the number of examples trained on (after any held out), and
    `monitor` the validation score that early stopping and η halving watch ("" when
    neither is on); 0 turns `early_stopping` and `halve_eta` off."""

    examples: int
    epochs: int
    batch_size: int
    eta: float
    eta_decay: float = 0.0
    lmbda: float = 0.0
    shuffle: bool = True
    regularization: str = "l2"
    dropout: float = 0.0
    validation_fraction: float = 0.0
    early_stopping: int = 0
    halve_eta: int = 0
    tol: float = 0.0
    monitor: str = ""
    shift: int = 0
    mirror: bool = False
    image_height: int = 0  # the examples' shape as images, for shift and mirror (0: neither is on)
    image_width: int = 0
    decay_over: str = "data"  # λ over the N examples ("data", Nielsen's) or over each mini-batch ("batch", scikit-learn's α)

    def eta_at(self, epoch: int, watch: stopping.Watch) -> float:
        """The learning rate of `epoch` (1-based): η/(1 + eta_decay·(epoch − 1)), halved as often as `watch` says."""
        rate = self.eta / (1.0 + self.eta_decay * (epoch - 1))
        return rate * watch.eta_factor if watch.halvings else rate

    @property
    def decay(self) -> float:
        """λ/N, the weight decay of each step."""
        return self.lmbda / self.examples

    @property
    def batch_sizes(self) -> set[int]:
        """The sizes of the run's mini-batches: m, and the last one's when m does not divide N."""
        return {self.batch_size, self.examples % self.batch_size} - {0}

    @property
    def watching(self) -> bool:
        return bool(self.early_stopping or self.halve_eta)

    @property
    def expanding(self) -> bool:
        """Whether the training images are shifted or mirrored (`xpbp.expand`)."""
        return bool(self.shift or self.mirror)

    @property
    def higher(self) -> bool:
        """Whether a higher monitored score is better."""
        return self.monitor in stopping.HIGHER

    @classmethod
    def checked(
        cls,
        examples: int,
        features: int,
        *,
        task: tasks.Task,
        using: optimizers.Optimizer,
        cost_eta: float,
        data: Data | None,
        **settings: Any,
    ) -> Run:
        """`fit`'s settings (by its names) for `examples` examples of `features` inputs
        trained `using` an optimizer, each checked, with a
        message naming the first bad one; N after any validation split. Without `data`
        (the command line checks its settings before loading any), validation data is
        taken to be there, and N is counted as if the split were not stratified."""
        fraction = real(settings["validation_fraction"] or 0.0, "validation_fraction", 0.0, 1.0, high_open=True)
        given = data is None or data.validation is not None
        if fraction and data is not None and data.validation is not None:
            raise ValueError("give validation_data or validation_fraction, not both")
        n = examples - draws.held_out(examples, fraction, data.labels() if data is not None else None) if fraction else examples
        stop, halve = (_patience(settings[k], k) for k in ("early_stopping", "halve_eta"))
        monitor = _monitor(settings["monitor"], task, bool(stop or halve))
        if (stop or halve) and not (given or fraction):
            which = "early_stopping" if stop else "halve_eta"
            raise ValueError(
                f"{which} watches a validation score: give validation_data=(X_val, y_val) or validation_fraction=0.1"
            )
        batch_size = min(10, n) if settings["batch_size"] is None else positive_int(settings["batch_size"], "batch_size")
        if batch_size > n:
            held = f" after the {examples - n} held out for validation" if fraction else ""
            raise ValueError(f"batch_size must be at most the number of examples ({n}{held}), got {batch_size}")
        eta = settings["eta"]
        if eta is None:
            eta = using.eta if using.eta is not None else cost_eta
        shift, mirror = _shift(settings["shift"]), bool(settings["mirror"])
        height, width = _image(settings["image_shape"], features, shift) if shift or mirror else (0, 0)
        return cls(
            n,
            positive_int(settings["epochs"], "epochs"),
            batch_size,
            real(eta, "eta", 0.0),
            real(settings["eta_decay"], "eta_decay", 0.0),
            real(settings["lmbda"], "lmbda", 0.0),
            bool(settings["shuffle"]),
            regularization.get(settings["regularization"]).name,
            real(settings["dropout"], "dropout", 0.0, 1.0, high_open=True),
            fraction,
            stop,
            halve,
            real(settings["tol"], "tol", 0.0),
            monitor,
            shift,
            mirror,
            height,
            width,
            _choice(settings["decay_over"], "decay_over", ("data", "batch")),
        )


@dataclass(frozen=True)
class Held:
    """Examples on the device, as rows: X `(n, n_in)` and their targets."""

    X: Any
    targets: tasks.Targets


@dataclass(frozen=True)
class Fingerprints:
    """Fingerprints of a run's training data and of its validation data, if given
    (`xpbp.validation.fingerprint`)."""

    train: int
    validation: int | None = None


@dataclass(frozen=True)
class Data:
    """A run's data on the device: `train`, all the examples given, and `validation`,
    given apart or None (a run with `validation_fraction` carves its own out of
    `train` when it starts: `carve`)."""

    train: Held
    validation: Held | None = None

    @classmethod
    def checked(cls, model: Model, task: tasks.Task, X: Any, y: Any, validation_data: Any, sample_weight: Any = None) -> Data:
        """`fit`'s data, each part validated and brought to the network's device."""
        if validation_data is not None and (not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2):
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        inputs, n_out = model.inputs, model.sizes[-1]
        try:
            X = inputs.rows(X, "X")
            targets = task.targets(y, X.shape[0], n_out, "y", dtype=model.dtype, device=model.device)
            if sample_weight is not None:
                weight = validation.sample_weight(sample_weight, X.shape[0], dtype=model.dtype, device=model.device)
                targets = dataclasses.replace(targets, weight=weight)
            train = Held(X, targets)
            if validation_data is None:
                return cls(train)
            Xv = inputs.rows(validation_data[0], "validation_data[0]")
            targets = task.targets(
                validation_data[1], Xv.shape[0], n_out, "validation_data[1]", dtype=model.dtype, device=model.device
            )
            return cls(train, Held(Xv, targets))
        except MemoryError as e:
            raise DeviceMemoryError(
                f"out of memory on {model.device} moving the data there: keep fewer examples on the device at once ({e})"
            ) from e

    def fingerprints(self, xp: Any) -> Fingerprints:
        """Fingerprints of the data given; one host transfer."""
        weight = self.train.targets.weight
        found = [validation.fingerprint(xp, self.train.X, self.train.targets.Y, *([] if weight is None else [weight[:, None]]))]
        if self.validation is not None:
            found.append(validation.fingerprint(xp, self.validation.X, self.validation.targets.Y))
        return Fingerprints(*backend.to_numpy(xp.stack(found)).tolist())

    def labels(self) -> np.ndarray | None:
        """The training labels on the host, for a stratified split (None for a regression)."""
        truth = self.train.targets.truth
        return None if truth is None else backend.to_numpy(truth)

    def carve(self, seed: int, fraction: float, labels: np.ndarray | None) -> tuple[np.ndarray, Held]:
        """The rows to train on (on the host) and the validation examples held out of them
        (copied on the device), split by `xpbp.draws.split`."""
        train, held = draws.split(seed, self.train.X.shape[0], fraction, labels)
        X, targets = self.train.X, self.train.targets
        index = backend.to_device(held, backend.device_of(X))
        truth = None if targets.truth is None else targets.truth.take(index)
        return train, Held(X.take(index, axis=0), tasks.Targets(targets.Y.take(index, axis=0), truth))


@dataclass(frozen=True)
class Execution:
    """How a run is carried out, which its results do not depend on: a progress bar or
    not, how many BLAS threads the CPU's matrix products may use (None: as many as the
    BLAS library has; see `xpbp.threads`), and the ranks of a data-parallel run
    (None: this process alone; see `xpbp.distributed`)."""

    progress: bool = False
    threads: int | None = None
    group: Group | None = None


@dataclass(frozen=True)
class State:
    """Where a run stands after `epoch` of its epochs, on the host: what a checkpoint
    saves and a resumed run takes back. `theta` and the optimizer's `slots` (its
    buffers, in its `slots` order) are flat; `best` is θ of the best epoch, kept
    for early stopping (None without it)."""

    epoch: int
    epochs_trained: int
    seed: int
    theta: np.ndarray
    step: int
    slots: tuple[np.ndarray, ...]
    history: History
    watch: stopping.Watch
    best: np.ndarray | None = None


@dataclass(frozen=True)
class Plan:
    """Everything `fit` was given, checked before any work starts, with the defaults
    filled in: Nielsen's 30 epochs, mini-batches of 10 (N when N < 10), and the cost's
    η for SGD (Adam's 0.001 for Adam)."""

    model: Model
    config: Config
    task: tasks.Task
    run: Run
    data: Data
    optimizer: optimizers.Optimizer
    execution: Execution
    checkpoint_every: int = 1

    @property
    def penalty(self) -> regularization.Regularization | None:
        """The regularisation term, when λ > 0."""
        return regularization.get(self.run.regularization) if self.run.lmbda else None

    @classmethod
    def checked(
        cls, model: Model, config: Config, X: Any, y: Any, validation_data: Any, units: Any = None, **settings: Any
    ) -> Plan:
        """`fit`'s arguments (`settings`: its keyword arguments), each validated, with a
        message naming the first bad one; in a data-parallel run, what one rank refuses,
        all refuse. `units`: a regression's target scale, for scores in the targets' units."""
        comm = settings["comm"]
        group = Group(comm, model.device) if comm is not None else None
        with agreeing(comm):
            task = (
                tasks.get(config.task) if config.task is not None else tasks.infer(config.output_activation, config.sizes[-1], y)
            )
            task = task if units is None else task.in_units(units)
            data = Data.checked(model, task, X, y, validation_data, settings["sample_weight"])
            optimizer = optimizers.get(settings["optimizer"], real(settings["momentum"], "momentum", 0.0, 1.0, high_open=True))
            run = Run.checked(*data.train.X.shape, task=task, using=optimizer, cost_eta=model.cost.eta, data=data, **settings)
            every = positive_int(settings["checkpoint_every"], "checkpoint_every")
            if not isinstance(settings["resume"], (bool, np.bool_)):
                raise TypeError(f"resume must be True or False, got {settings['resume']!r}")
            if settings["resume"] and settings["checkpoint"] is None:
                raise ValueError("resume=True needs checkpoint=PATH, the file to resume from")
            threads = settings["threads"]
            if threads is None:  # None from threads_for too: all the BLAS library's threads
                threads = threads_for(list(model.sizes), run.batch_size, group.size if group else 1)
            else:
                threads = positive_int(threads, "threads")
            progress = settings["progress"]
            execution = Execution(sys.stderr.isatty() if progress is None else bool(progress), threads, group)
        return cls(model, dataclasses.replace(config, task=task.name), task, run, data, optimizer, execution, every)


def _patience(value: Any, name: str) -> int:
    """None or 0 (off), or a positive number of epochs."""
    return (
        0
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == 0)
        else positive_int(value, name)
    )


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _shift(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"shift must be a whole number of pixels >= 0, got {value!r}")
    return int(value)


def _image(shape: Any, features: int, shift: int) -> tuple[int, int]:
    """The examples' (height, width) as images: `shape`, or the square that `features`
    pixels make when it is None."""
    if shape is None:
        side = int(round(features**0.5))
        if side * side != features:
            raise ValueError(
                f"shift and mirror move images: give image_shape=(height, width) for {features} inputs, not a square"
            )
        shape = (side, side)
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"image_shape must be (height, width), got {shape!r}")
    height, width = (positive_int(n, "image_shape") for n in shape)
    if height * width != features:
        raise ValueError(f"image_shape {height}x{width} has {height * width} pixels, but the examples have {features} inputs")
    if shift >= min(height, width):
        raise ValueError(f"shift must be less than the image's side ({min(height, width)} pixels), got {shift}")
    return height, width


def _monitor(value: Any, task: tasks.Task, watching: bool) -> str:
    """The score early stopping and η halving watch: the task's first by default."""
    known = ("val_cost", *(f"val_{s}" for s in task.scores))
    if value is None:
        return known[1] if watching else ""
    if value not in known:
        raise ValueError(f"monitor must be one of {', '.join(map(repr, known))} for a {task.name}, got {value!r}")
    if not watching:
        raise ValueError(f"monitor={value!r} is the score early_stopping and halve_eta watch: give one of them too")
    return str(value)
