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

import contextlib
import dataclasses
import functools
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Iterator

import numpy as np
from threadpoolctl import ThreadpoolController
from tqdm import tqdm

from . import backend, formats
from .backend import fuse
from .validation import positive_int, real

if TYPE_CHECKING:
    from .network import Network

__all__ = ["Data", "DeviceMemoryError", "DivergenceError", "Execution", "History", "Run", "Trainer", "threads_for"]

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


@dataclass(frozen=True)
class Execution:
    """How a run is carried out, which its results do not depend on: a progress bar or
    not, and how many BLAS threads the CPU's matrix products may use (None: as many as
    the BLAS library has)."""

    progress: bool = False
    threads: int | None = None


# Below this many floating-point operations per training step, a second BLAS thread
# gained at most ~15% on an idle 2-core machine, and cost a factor of five on one
# where two other trainings ran (the threads spin waiting for a core).
THREADED_STEP_FLOPS = 50e6


def threads_for(sizes: list[int], batch_size: int) -> int | None:
    """The BLAS threads for a CPU training step: ``$XPBP_NUM_THREADS`` when set, else one
    for steps whose matrix products are too small for more to pay, else None (all)."""
    setting = os.environ.get("XPBP_NUM_THREADS")
    if setting:
        return positive_int(int(setting) if setting.isdigit() else setting, "XPBP_NUM_THREADS")
    products = sum(n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    flops = 2 * batch_size * (3 * products - sizes[0] * sizes[1])  # z = w a, BP4, and BP2 above the first layer
    return 1 if flops < THREADED_STEP_FLOPS else None


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _blas_threads(device: str, threads: int | None) -> ContextManager[Any]:
    """A context in which the CPU's BLAS uses at most ``threads`` threads."""
    if device != "cpu" or threads is None:
        return contextlib.nullcontext()
    return _blas().limit(limits=threads, user_api="blas")


@fuse
def _momentum(xp: Any, grad: Any, mu: Any, theta: Any, v: Any) -> None:
    """v ← μv − η∇C, then θ ← θ + v (``grad`` holds η∇C)."""
    v *= mu
    v -= grad
    theta += v


class Trainer:
    """One run of ``fit`` on a network. Make it and use it with the network's device current."""

    def __init__(self, net: Network, run: Run, data: Data, execution: Execution = Execution()) -> None:
        self.net, self.run, self.data, self.execution = net, run, data, execution
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
        self._known: formats.Identity | None = None  # see _identity

    def train(self, checkpoint: str | Path | None = None, every: int = 1, resume: bool = False) -> History:
        """The remaining epochs of the run (all, unless resumed from ``checkpoint``),
        writing ``checkpoint`` every ``every`` epochs and after the last."""
        done = self._resume(checkpoint) if resume and Path(checkpoint).exists() else 0
        try:
            with np.errstate(over="ignore", invalid="ignore"), _blas_threads(self.net.device, self.execution.threads):
                for epoch in range(done + 1, self.run.epochs + 1):
                    self.epoch(epoch)  # the overflow that NumPy would warn of surfaces as DivergenceError
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
                  disable=not self.execution.progress) as bar:
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
            cost, correct, bad = values[-3:]
            if bad:  # a cost or an accuracy counted from NaN or Inf outputs would be a guess
                log.warning("epoch %d: the outputs for %d validation examples are NaN or Inf; "
                            "their cost and accuracy are recorded as NaN", epoch, int(bad))
            n = validation[0].shape[0]
            history.val_cost.append(cost / n if not bad else math.nan)
            history.val_accuracy.append(correct / n if not bad else math.nan)
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
            f"The network keeps its last finite parameters. {self._cause(eta, x if index else None)}",
            epoch=epoch, batch=index, history=self.history,
        )

    def _cause(self, eta: float, x: Any) -> str:
        """What most likely made training diverge, and what to change."""
        shrink = 1.0 - eta * self.run.decay  # each step's factor on w from the L2 term
        if shrink <= -1.0:
            return (f"The L2 term alone makes w grow: each step multiplies w by 1 - eta*lmbda/N = {shrink:g}, "
                    f"beyond -1; try a smaller lmbda (lmbda={self.run.lmbda:g}) or learning rate (eta={eta:g} in that epoch).")
        largest = float(backend.to_numpy(abs(x).max())) if x is not None else 0.0
        if largest > 1e6:
            return (f"Its inputs reach {largest:.3g}: scale the data (to about [0, 1]), "
                    f"or try a smaller learning rate (eta={eta:g} in that epoch).")
        return f"Try a smaller learning rate (eta={eta:g} in that epoch)."

    def _identity(self) -> formats.Identity:
        """What this run's checkpoints record of it and must match on resume, with the
        fingerprints of its data (computed once, in one host transfer)."""
        if self._known is None:
            data = {"data_train": _fingerprint(self.xp, self.data.X, self.data.Y)}
            if self.data.validation is not None:
                data["data_validation"] = _fingerprint(self.xp, *self.data.validation[:2])
            values = backend.to_numpy(self.xp.stack(list(data.values()))).tolist()
            self._known = formats.Identity(self.net._config(), dataclasses.asdict(self.run), _RUN_DEFAULTS,
                                           tuple(vars(History())), dict(zip(data, values)))
        return self._known

    def _checkpoint(self, path: str | Path, epoch: int) -> None:
        """Everything needed to go on after ``epoch``, in one host transfer and one atomic write."""
        host = backend.to_numpy(self.xp.concatenate(self._state()))
        size = self.theta.size
        views = self.workspace.layout.views(host[:size])
        L = len(self.net.sizes) - 1
        model = formats.ModelFile(self.net._config(), views[:L], views[L:])
        velocity = host[size:] if self.velocity is not None else None
        identity = self._identity()
        formats.write_checkpoint(path, formats.Checkpoint(model, velocity, epoch, self.net._epochs_trained,
                                                          identity.run, vars(self.history), identity.data))

    def _resume(self, path: str | Path) -> int:
        """Load a checkpoint of this run, whole or not at all; returns its epoch."""
        net = self.net
        saved = formats.read_checkpoint(path, self._identity())
        # Everything is checked: from here on nothing can fail half-way.
        net._load(saved.model.weights + saved.model.biases)
        if self.velocity is not None:
            self.velocity[...] = backend.to_device(saved.velocity, net.device)
        net.seed, net._epochs_trained = saved.model.config.seed, saved.epochs_trained
        self.history = History(**saved.history)
        log.info("resuming from %s after epoch %d of %d", path, saved.epoch, self.run.epochs)
        return saved.epoch


def _fingerprint(xp: Any, *arrays: Any) -> Any:
    """A 64-bit checksum of the bits of 2-D arrays, on their device: Σᵢⱼ bitsᵢⱼ rᵢ cⱼ
    (mod 2⁶⁴) with pseudo-random odd weights for each row and column, so that other
    values, or the same rows in another order, give another number. Integer arithmetic,
    so it is the same on every device. Blocks of rows bound the memory it takes."""
    total = xp.zeros(1, dtype=np.uint64)  # an array, not a scalar: NumPy's scalars warn when they wrap
    for a in arrays:
        bits = a.view(np.uint32 if a.dtype.itemsize == 4 else np.uint64)
        cols = _mix(xp.arange(bits.shape[1], dtype=np.uint64) + np.uint64(1 << 32))
        for k in range(0, bits.shape[0], _BLOCK):
            rows = _mix(xp.arange(k, min(k + _BLOCK, bits.shape[0]), dtype=np.uint64))
            total += (xp.matmul(bits[k : k + _BLOCK].astype(np.uint64), cols) * rows).sum()
        total = _mix(total)
    return total[0]


_BLOCK = 4096


def _mix(z: Any) -> Any:
    """SplitMix64's finaliser, elementwise on uint64 (odd at the end, so never zero weight)."""
    z = z * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))) | np.uint64(1)


def _assign(targets: list[Any], values: list[Any]) -> None:
    """Copy ``values`` into the arrays ``targets``, in place."""
    for t, v in zip(targets, values):
        t[...] = v
