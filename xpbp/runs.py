"""One run of ``fit``, described: what it is given, each part checked before any work
starts (:class:`Run`, :class:`Data`, :class:`Execution`, together a :class:`Plan`), and
what it gives back (:class:`History`) or why it stopped (:class:`DivergenceError`,
:class:`DeviceMemoryError`). :mod:`xpbp.training` carries a run out.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import backend, validation
from .distributed import Group, agreeing
from .threads import threads_for
from .validation import positive_int, real

if TYPE_CHECKING:
    from .network import Network

__all__ = ["Data", "DeviceMemoryError", "DivergenceError", "Execution", "History", "Plan", "Run"]


@dataclass
class History:
    """What ``fit`` saw, one entry per epoch. The validation lists stay empty
    without ``validation_data``.

    ``train_cost`` is the mean cost of the epoch's mini-batches, each evaluated as
    it was trained on (so it costs no extra pass over the data), plus the L2 term
    ½(λ/N)Σ‖w‖² at the epoch's end when λ > 0.
    """

    train_cost: list[float] = field(default_factory=list)
    val_cost: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


class DivergenceError(ArithmeticError):
    """Training produced a NaN or Inf cost or parameter. The network keeps the last
    finite parameters; ``epoch`` and ``batch`` (1-based, None when the replay could not
    pin it down) say where, ``history`` holds the epochs completed before."""

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
    """The settings of one call of ``fit``: what its checkpoints record, and what a run
    resumed from one must match. A setting added later gets a default here, so that
    checkpoints written before it still resume."""

    examples: int  # N, the number of training examples
    epochs: int
    batch_size: int
    eta: float
    eta_decay: float = 0.0
    lmbda: float = 0.0
    momentum: float = 0.0
    shuffle: bool = True

    @classmethod
    def checked(
        cls, examples: int, *, epochs: Any, batch_size: Any, eta: Any, eta_decay: Any, lmbda: Any, momentum: Any, shuffle: Any
    ) -> Run:
        """The settings, each validated, with a message naming the first bad one."""
        epochs, batch_size = positive_int(epochs, "epochs"), positive_int(batch_size, "batch_size")
        if batch_size > examples:
            raise ValueError(f"batch_size must be at most the number of examples ({examples}), got {batch_size}")
        return cls(
            examples,
            epochs,
            batch_size,
            real(eta, "eta", 0.0),
            real(eta_decay, "eta_decay", 0.0),
            real(lmbda, "lmbda", 0.0),
            real(momentum, "momentum", 0.0, 1.0, high_open=True),
            bool(shuffle),
        )

    def eta_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (1-based): η/(1 + eta_decay·(epoch − 1))."""
        return self.eta / (1.0 + self.eta_decay * (epoch - 1))

    @property
    def decay(self) -> float:
        """λ/N, the weight decay of each step."""
        return self.lmbda / self.examples

    @property
    def batch_sizes(self) -> set[int]:
        """The sizes of the run's mini-batches: m, and the last one's when m does not divide N."""
        return {self.batch_size, self.examples % self.batch_size} - {0}


@dataclass(frozen=True)
class Data:
    """A run's data on the device, examples as rows: X ``(N, n_in)``, the targets Y
    ``(N, n_out)``, and optionally the validation set ``(X, Y, labels)``."""

    X: Any
    Y: Any
    validation: tuple[Any, Any, Any] | None = None

    @classmethod
    def checked(cls, net: Network, X: Any, y: Any, validation_data: Any) -> Data:
        """``fit``'s data, each part validated and brought to the network's device."""
        if validation_data is not None and (not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2):
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        try:
            X = net._inputs.rows(X, "X")
            Y, _ = net._inputs.targets(y, X.shape[0], "y")
            if validation_data is None:
                return cls(X, Y)
            Xv = net._inputs.rows(validation_data[0], "validation_data[0]")
            return cls(X, Y, (Xv, *net._inputs.targets(validation_data[1], Xv.shape[0], "validation_data[1]")))
        except MemoryError as e:
            raise DeviceMemoryError(
                f"out of memory on {net.device} moving the data there: keep fewer examples on the device at once ({e})"
            ) from e

    def fingerprints(self, xp: Any) -> dict[str, int]:
        """Fingerprints of the training data and of the validation data (when there is
        some), by their names in checkpoints; one host transfer."""
        found = {"data_train": validation.fingerprint(xp, self.X, self.Y)}
        if self.validation is not None:
            found["data_validation"] = validation.fingerprint(xp, *self.validation[:2])
        return dict(zip(found, backend.to_numpy(xp.stack(list(found.values()))).tolist()))


@dataclass(frozen=True)
class Execution:
    """How a run is carried out, which its results do not depend on: a progress bar or
    not, how many BLAS threads the CPU's matrix products may use (None: as many as the
    BLAS library has; see :mod:`xpbp.threads`), and the ranks of a data-parallel run
    (None: this process alone; see :mod:`xpbp.distributed`)."""

    progress: bool = False
    threads: int | None = None
    group: Group | None = None


@dataclass(frozen=True)
class Plan:
    """Everything ``fit`` was given, checked before any work starts, with Nielsen's
    defaults filled in: 30 epochs, mini-batches of 10 (N when N < 10), the cost's η."""

    run: Run
    data: Data
    execution: Execution
    checkpoint_every: int = 1

    @classmethod
    def checked(
        cls,
        net: Network,
        X: Any,
        y: Any,
        validation_data: Any,
        *,
        epochs: Any,
        batch_size: Any,
        eta: Any,
        eta_decay: Any,
        lmbda: Any,
        momentum: Any,
        shuffle: Any,
        progress: bool | None,
        checkpoint: Any,
        checkpoint_every: Any,
        resume: bool,
        threads: Any,
        comm: Any,
    ) -> Plan:
        """``fit``'s arguments, each validated, with a message naming the first bad one; in
        a data-parallel run, what one rank refuses, all refuse."""
        group = Group(comm, net.device) if comm is not None else None
        with agreeing(comm):
            data = Data.checked(net, X, y, validation_data)
            n = data.X.shape[0]
            run = Run.checked(
                n,
                epochs=epochs,
                batch_size=min(10, n) if batch_size is None else batch_size,
                eta=net._cost.eta if eta is None else eta,
                eta_decay=eta_decay,
                lmbda=lmbda,
                momentum=momentum,
                shuffle=shuffle,
            )
            every = positive_int(checkpoint_every, "checkpoint_every")
            if resume and checkpoint is None:
                raise ValueError("resume=True needs checkpoint=PATH, the file to resume from")
            if threads is None:  # None from threads_for too: all the BLAS library's threads
                threads = threads_for(net.sizes, run.batch_size, group.size if group else 1)
            else:
                threads = positive_int(threads, "threads")
            execution = Execution(sys.stderr.isatty() if progress is None else bool(progress), threads, group)
        return cls(run, data, execution, every)
