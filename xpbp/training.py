"""Mini-batch stochastic gradient descent: the run's settings, the epoch loop, the
update step, divergence replay and checkpoints.

For each mini-batch of m examples, with ∇C from BP1–BP4 (:mod:`xpbp.workspace`)::

    v ← μv − η(∇C + (λ/N) w),   w ← w + v        (b likewise, without the λ term)

With μ = 0 this is Nielsen's update, w ← (1 − ηλ/N) w − η∇C. Each epoch draws a
permutation on the device from the network's seed and its epoch count, gathers each
mini-batch from it as the step needs it, and ends with one host transfer of its
statistics: nothing crosses between host and device inside the batch loop.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from tqdm import tqdm

from . import backend, formats
from .backend import fuse
from .validation import positive_int, real

if TYPE_CHECKING:
    from .network import Network

__all__ = ["Data", "DeviceMemoryError", "DivergenceError", "History", "Run", "Trainer"]

log = logging.getLogger("xpbp.network")  # the logger users already listen to


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
    def checked(cls, examples: int, *, epochs: Any, batch_size: Any, eta: Any, eta_decay: Any, lmbda: Any,
                momentum: Any, shuffle: Any) -> Run:
        """The settings, each validated, with a message naming the first bad one."""
        epochs, batch_size = positive_int(epochs, "epochs"), positive_int(batch_size, "batch_size")
        if batch_size > examples:
            raise ValueError(f"batch_size must be at most the number of examples ({examples}), got {batch_size}")
        return cls(examples, epochs, batch_size, real(eta, "eta", 0.0), real(eta_decay, "eta_decay", 0.0),
                   real(lmbda, "lmbda", 0.0), real(momentum, "momentum", 0.0, 1.0, high_open=True), bool(shuffle))

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


_RUN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Run) if f.default is not dataclasses.MISSING}


@dataclass(frozen=True)
class Data:
    """A run's data on the device, examples as rows: X ``(N, n_in)``, the targets Y
    ``(N, n_out)``, and optionally the validation set ``(X, Y, labels)``."""

    X: Any
    Y: Any
    validation: tuple[Any, Any, Any] | None = None


@fuse
def _momentum(xp: Any, grad: Any, mu: Any, theta: Any, v: Any) -> None:
    """v ← μv − η∇C, then θ ← θ + v (``grad`` holds η∇C)."""
    v *= mu
    v -= grad
    theta += v


class Trainer:
    """One run of ``fit`` on a network. Make it and use it with the network's device current."""

    def __init__(self, net: Network, run: Run, data: Data, progress: bool = False) -> None:
        self.net, self.run, self.data, self.progress = net, run, data, progress
        self.xp, self.history = net.xp, History()
        self.theta = net._sync()  # every w and b are views of θ
        self.workspace = net._workspace(run.batch_sizes)
        layout = self.workspace.layout
        self.velocity = layout.zeros(self.xp, net.dtype) if run.momentum else None
        # The weights come first in θ and ∇C: their L2 term is one operation too.
        k = layout.weights
        self._theta_w, self._grad_w = self.theta[:k], self.workspace.grad[:k]
        self._decay = self.xp.empty(k, dtype=net.dtype) if run.lmbda else None
        self._mu = net.dtype.type(run.momentum)

    def train(self, checkpoint: str | Path | None = None, every: int = 1, resume: bool = False) -> History:
        """The remaining epochs of the run (all, unless resumed from ``checkpoint``),
        writing ``checkpoint`` every ``every`` epochs and after the last."""
        done = self._resume(checkpoint) if resume and Path(checkpoint).exists() else 0
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow surfaces as DivergenceError instead
                for epoch in range(done + 1, self.run.epochs + 1):
                    self.epoch(epoch)
                    if checkpoint is not None and (epoch % every == 0 or epoch == self.run.epochs):
                        self._checkpoint(checkpoint, epoch)
        except MemoryError as e:
            net = self.net
            raise DeviceMemoryError(
                f"out of memory on {net.device} training layers {net.sizes} with batch_size={self.run.batch_size} "
                f"({self.run.examples} examples on the device): try a smaller batch_size ({e})"
            ) from e
        return self.history

    def step(self, x: Any, y: Any, eta: float) -> Any:
        """One gradient-descent update on a mini-batch (examples as columns); returns its
        output activations aᴸ from before the update (a work buffer, valid until the next step).

        θ, ∇C and the velocities each lie in one buffer laid out alike, so each line of
        the update is one operation (or kernel) for the whole network."""
        grad = self.workspace.grad
        a = self.workspace.backprop(self.net.weights, self.net.biases, x, y, eta / x.shape[1])  # η∇C of the mean cost
        if self._decay is not None:
            self._grad_w += self.xp.multiply(self._theta_w, eta * self.run.decay, out=self._decay)  # η(∇C + (λ/N) w)
        if self.velocity is None:
            self.theta -= grad  # w ← w − η∇C, b likewise
        else:
            _momentum(grad, self._mu, self.theta, self.velocity)  # v ← μv − η∇C, w ← w + v
        return a

    def epoch(self, epoch: int) -> None:
        """One pass over the data, then its statistics in one host transfer."""
        net, run, xp = self.net, self.run, self.xp
        n, m, eta = run.examples, run.batch_size, run.eta_at(epoch)
        start = time.perf_counter()
        snapshot = [a.copy() for a in self._state()]  # the last finite state, should this epoch diverge
        order = self._order()
        outputs = xp.empty((net.sizes[-1], n), dtype=net.dtype)  # each mini-batch's aᴸ, as it was trained on
        with tqdm(total=n, desc=f"epoch {epoch}/{run.epochs}", unit="ex", unit_scale=True, leave=False,
                  disable=not self.progress) as bar:
            for k, (x, y) in zip(range(0, n, m), self._batches(order)):
                outputs[:, k : k + m] = self.step(x, y, eta)
                bar.update(x.shape[1])
        targets = self.data.Y if order is None else self.data.Y.take(order, axis=0)
        # The training cost in one pass at the end, not a handful of calls per step; then
        # θ's sum, which is finite iff every parameter is.
        stats = [net._cost.fn(outputs, targets.T).sum() / n, self.theta.sum()]
        if run.lmbda:
            stats.append(0.5 * run.decay * sum((w * w).sum() for w in net.weights))
        if self.data.validation is not None:
            stats.extend(net._totals(*self.data.validation))
        values = backend.to_numpy(xp.stack(stats)).tolist()  # the epoch's one host synchronisation
        if not all(map(math.isfinite, values[:2])):
            self._diverged(epoch, snapshot)
        net._epochs_trained += 1
        self._record(epoch, values, time.perf_counter() - start)

    def _record(self, epoch: int, values: list[float], seconds: float) -> None:
        history, validation = self.history, self.data.validation
        history.train_cost.append(values[0] + (values[2] if self.run.lmbda else 0.0))
        if validation is not None:
            history.val_cost.append(values[-2] / validation[0].shape[0])
            history.val_accuracy.append(values[-1] / validation[0].shape[0])
        history.seconds.append(seconds)
        line = f"epoch {epoch}/{self.run.epochs}: cost {history.train_cost[-1]:.4f}"
        if validation is not None:
            line += f", validation cost {history.val_cost[-1]:.4f}, accuracy {history.val_accuracy[-1]:.2%}"
        log.info("%s (%.2f s, %.0f examples/s)", line, seconds, self.run.examples / seconds)

    def _state(self) -> list[Any]:
        """What an update changes: θ, and the velocities when there is momentum."""
        return [self.theta] if self.velocity is None else [self.theta, self.velocity]

    def _order(self) -> Any:
        """This epoch's order of the examples: a permutation drawn on the device from the
        seed and the number of epochs trained so far (so it needs no state beyond those
        two), or None for the data's own order."""
        if not self.run.shuffle:
            return None
        seed = np.random.SeedSequence([self.net.seed, self.net._epochs_trained]).generate_state(1)[0]
        return self.xp.random.RandomState(int(seed)).permutation(self.run.examples)

    def _batches(self, order: Any) -> Iterator[tuple[Any, Any]]:
        """The mini-batches ``(x, y)`` in ``order``, examples as columns, each gathered as
        needed (m rows at a time, hot in cache for the step that uses them), so that the
        data set is never copied whole."""
        X, Y, m = self.data.X, self.data.Y, self.run.batch_size
        for k in range(0, X.shape[0], m):
            if order is None:
                yield X[k : k + m].T, Y[k : k + m].T
            else:
                index = order[k : k + m]
                yield X.take(index, axis=0).T, Y.take(index, axis=0).T

    def _diverged(self, epoch: int, snapshot: list[Any]) -> None:
        """Replay the epoch from its snapshot, checking after every mini-batch, to find the
        first one that produced a NaN or Inf; leave the parameters as they were before it
        and raise :class:`DivergenceError`."""
        state = self._state()
        _assign(state, snapshot)
        batches, eta = -(-self.run.examples // self.run.batch_size), self.run.eta_at(epoch)
        for index, (x, y) in enumerate(self._batches(self._order()), start=1):
            before = [p.copy() for p in state]
            a = self.step(x, y, eta)
            if not math.isfinite(float(backend.to_numpy(self.net._cost.fn(a, y).sum() + state[0].sum()))):
                _assign(state, before)
                where = f"mini-batch {index} of {batches}"
                break
        else:  # not reproduced: fall back to the epoch's start
            _assign(state, snapshot)
            index, where = None, "a mini-batch that a replay could not pin down"
        raise DivergenceError(
            f"training diverged in epoch {epoch}, {where}: the cost or a parameter became NaN or Inf. "
            f"The network keeps its last finite parameters. Try a smaller learning rate (eta={eta:g} in that epoch).",
            epoch=epoch, batch=index, history=self.history,
        )

    def _checkpoint(self, path: str | Path, epoch: int) -> None:
        """Everything needed to go on after ``epoch``, in one host transfer and one atomic write."""
        host = backend.to_numpy(self.xp.concatenate(self._state()))
        size = self.theta.size
        views = self.workspace.layout.views(host[:size])
        L = len(self.net.sizes) - 1
        model = formats.ModelFile(self.net._config(), views[:L], views[L:])
        velocity = host[size:] if self.velocity is not None else None
        formats.write_checkpoint(path, formats.Checkpoint(model, velocity, epoch, self.net._epochs_trained,
                                                          dataclasses.asdict(self.run), vars(self.history)))

    def _resume(self, path: str | Path) -> int:
        """Load a checkpoint of this run, whole or not at all; returns its epoch."""
        net = self.net
        saved = formats.read_checkpoint(path, net._config(), dataclasses.asdict(self.run), _RUN_DEFAULTS,
                                        tuple(vars(History())))
        # Everything is checked: from here on nothing can fail half-way.
        net._load(saved.model.weights + saved.model.biases)
        if self.velocity is not None:
            self.velocity[...] = backend.to_device(saved.velocity.astype(net.dtype), net.device)
        net.seed, net._epochs_trained = saved.model.config.seed, saved.epochs_trained
        self.history = History(**saved.history)
        log.info("resuming from %s after epoch %d of %d", path, saved.epoch, self.run.epochs)
        return saved.epoch


def _assign(targets: list[Any], values: list[Any]) -> None:
    """Copy ``values`` into the arrays ``targets``, in place."""
    for t, v in zip(targets, values):
        t[...] = v
