"""Mini-batch stochastic gradient descent: the epoch loop, the update step and
divergence replay, for a run described in :mod:`xpbp.runs`.

For each mini-batch of m examples, with ∇C from BP1–BP4 (:mod:`xpbp.workspace`)::

    v ← μv − η(∇C + (λ/N) w),   w ← w + v        (b likewise, without the λ term)

With μ = 0 this is Nielsen's update, w ← (1 − ηλ/N) w − η∇C. Each epoch draws a
permutation on the device from the network's seed and its epoch count, gathers the
mini-batches from it in blocks of a few of them, and ends with one host transfer of its
statistics: nothing crosses between host and device inside the batch loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from . import backend, threads
from .backend import fuse
from .distributed import Group
from .runs import Data, DeviceMemoryError, DivergenceError, Execution, History, Run

if TYPE_CHECKING:
    from .checkpoints import Checkpoints
    from .network import Network

__all__ = ["Trainer"]

log = logging.getLogger("xpbp.network")  # the logger users already listen to


# How many bytes of examples an epoch gathers at once, for the mini-batches of a block.
_BLOCK_BYTES = 1 << 18


@fuse
def _momentum(xp: Any, grad: Any, mu: Any, theta: Any, v: Any) -> None:
    """v ← μv − η∇C, then θ ← θ + v (``grad`` holds η∇C)."""
    v *= mu
    v -= grad
    theta += v


class Trainer:
    """One run of ``fit`` on a network. Make it and use it with the network's device
    current; in a data-parallel run, on every rank alike."""

    def __init__(self, net: Network, run: Run, data: Data, execution: Execution = Execution()) -> None:
        self.net, self.run, self.data, self.execution = net, run, data, execution
        self.xp, self.history, self.group = net.xp, History(), execution.group
        with self._memory():
            self._allocate()
        if self.group is not None:
            self._join(self.group)

    def _allocate(self) -> None:
        """The run's buffers: the workspace's, the velocities, and the L2 term's."""
        net, run = self.net, self.run
        self.theta = net._sync()  # every w and b are views of θ
        self.workspace = net._workspace(run.batch_sizes)
        layout = self.workspace.layout
        self.velocity = layout.zeros(self.xp, net.dtype) if run.momentum else None
        # The weights come first in θ and ∇C: their L2 term is one operation too.
        k = layout.weights
        self._theta_w, self._grad_w = self.theta[:k], self.workspace.grad[:k]
        self._decay = self.xp.empty(k, dtype=net.dtype) if run.lmbda else None
        self._mu = net.dtype.type(run.momentum)
        self._mine = None  # the positions of this rank's examples in each epoch's order

    @contextlib.contextmanager
    def _memory(self) -> Iterator[None]:
        """Report running out of memory as :class:`DeviceMemoryError`, naming what needed it."""
        try:
            yield
        except MemoryError as e:
            net, run = self.net, self.run
            raise DeviceMemoryError(
                f"out of memory on {net.device} training layers {net.sizes} with batch_size={run.batch_size} "
                f"({run.examples} examples on the device): try a smaller batch_size ({e})"
            ) from e

    def _join(self, group: Group) -> None:
        """Start a data-parallel run: check that every rank has the same run and data, then
        take rank 0's parameters, seed and epoch count, and this rank's share of the data."""
        net, run = self.net, self.run
        group.same("the network", dataclasses.replace(net._config(), seed=0))
        group.same("the settings of fit", run)
        group.same("the data (shapes and fingerprints)", (self.data.X.shape, self.data.fingerprints(self.xp)))
        group.broadcast(self.theta)
        net.seed, net._epochs_trained = group.share((net.seed, net._epochs_trained))
        mine = [
            np.arange(k + lo, k + hi)
            for k in range(0, run.examples, run.batch_size)
            for lo, hi in [group.slice(min(run.batch_size, run.examples - k))]
        ]
        self._mine = backend.to_device(np.concatenate(mine), net.device)

    def train(self, checkpoints: Checkpoints | None = None) -> History:
        """The remaining epochs of the run: all, unless ``checkpoints`` resumes it, which
        also records the run as it goes."""
        done = checkpoints.start(self) if checkpoints is not None else 0
        with self._memory(), np.errstate(over="ignore", invalid="ignore"), threads.limit(self.net.device, self.execution.threads):
            for epoch in range(done + 1, self.run.epochs + 1):
                self.epoch(epoch)  # the overflow that NumPy would warn of surfaces as DivergenceError
                if checkpoints is not None:
                    checkpoints.after(self, epoch)
        return self.history

    def step(self, x: Any, y: Any, eta: float, m: int | None = None) -> Any:
        """One gradient-descent update on a mini-batch of ``m`` examples (all the columns
        of ``x`` and ``y``, or in a data-parallel run this rank's share of them); returns
        its output activations aᴸ from before the update (a work buffer, valid until the
        next step).

        θ, ∇C and the velocities each lie in one buffer laid out alike, so each line of
        the update is one operation (or kernel) for the whole network."""
        grad = self.workspace.grad
        scale = eta / (x.shape[1] if m is None else m)
        a = self.workspace.backprop(self.net.weights, self.net.biases, x, y, scale)  # η∇C of the mean cost
        if self.group is not None:
            self.group.allreduce(grad)  # the sum of the ranks' shares: η∇C of the whole mini-batch
        if self._decay is not None:
            self._grad_w += self.xp.multiply(self._theta_w, eta * self.run.decay, out=self._decay)  # η(∇C + (λ/N) w)
        if self.velocity is None:
            self.theta -= grad  # w ← w − η∇C, b likewise
        else:
            _momentum(grad, self._mu, self.theta, self.velocity)  # v ← μv − η∇C, w ← w + v
        return a

    def epoch(self, epoch: int) -> None:
        """One pass over the data, then its statistics in one host transfer (and, in a
        data-parallel run, one small collective)."""
        net, run, xp = self.net, self.run, self.xp
        eta = run.eta_at(epoch)
        start = time.perf_counter()
        snapshot = [a.copy() for a in self._state()]  # the last finite state, should this epoch diverge
        order = self._order()
        mine = self._examples(order)  # which examples this process trains on, in the order it does
        outputs = xp.empty((net.sizes[-1], run.examples if mine is None else mine.shape[0]), dtype=net.dtype)
        k = 0  # each mini-batch's aᴸ, as it was trained on, goes to outputs[:, k:]
        with tqdm(
            total=run.examples,
            desc=f"epoch {epoch}/{run.epochs}",
            unit="ex",
            unit_scale=True,
            leave=False,
            disable=not (self.execution.progress and self.speaks),
        ) as bar:
            for m, x, y in self._batches(order):
                outputs[:, k : k + x.shape[1]] = self.step(x, y, eta, m)
                k += x.shape[1]
                bar.update(m)
        targets = self.data.Y if mine is None else self.data.Y.take(mine, axis=0)
        # The training cost in one pass at the end, not a handful of calls per step; then
        # whether every parameter and output is still finite.
        stats = [net._cost.fn(outputs, targets.T).sum() / run.examples, self._finite(outputs)]
        if run.lmbda:
            stats.append(0.5 * run.decay * sum((w * w).sum() for w in net.weights))
        if self.data.validation is not None:
            stats.extend(net._totals(*self._held_out(self.data.validation)))
        values = backend.to_numpy(xp.stack(stats)).tolist()  # the epoch's one host synchronisation
        values, seconds = self._combine(values, time.perf_counter() - start)
        if values[1] != 1.0:
            self._diverged(epoch, snapshot)
        net._epochs_trained += 1
        self._record(epoch, values, seconds)

    def _finite(self, a: Any) -> Any:
        """1 when θ and ``a`` hold no NaN or Inf, else 0: on the device, in the network's dtype."""
        xp = self.xp
        return (xp.isfinite(self.theta).all() & xp.isfinite(a).all()).astype(self.net.dtype)

    @property
    def speaks(self) -> bool:
        """Whether this process logs and shows progress: rank 0 of a data-parallel run."""
        return self.group is None or self.group.rank == 0

    def _examples(self, order: Any) -> Any:
        """This process's examples in this epoch's order, or None for all of them in the data's."""
        if order is None or self._mine is None:
            return order if self._mine is None else self._mine
        return order.take(self._mine)

    def _held_out(self, validation: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        """The validation rows this process evaluates: all, or this rank's contiguous share."""
        if self.group is None:
            return validation
        lo, hi = self.group.slice(validation[0].shape[0])
        X, Y, labels = validation
        return X[lo:hi], Y[lo:hi], labels[lo:hi]

    def _combine(self, values: list[float], seconds: float) -> tuple[list[float], float]:
        """The epoch's statistics of all ranks, in one small collective: the training cost
        and the validation totals summed, finite only if finite on every rank, the L2 term
        (the same on every rank) taken from rank 0, and the longest time."""
        if self.group is None:
            return values, seconds
        ranks = self.group.gather(values + [seconds])
        summed = [sum(v[i] for v in ranks) for i in range(len(values))]
        finite = min(v[1] for v in ranks)
        l2 = ranks[0][2:3] if self.run.lmbda else []
        combined = [summed[0], finite, *l2, *summed[2 + len(l2) :]]
        return combined, max(v[-1] for v in ranks)

    def _record(self, epoch: int, values: list[float], seconds: float) -> None:
        history, validation = self.history, self.data.validation
        history.train_cost.append(values[0] + (values[2] if self.run.lmbda else 0.0))
        if validation is not None:
            cost, correct, bad = values[-3:]
            if bad and self.speaks:  # a cost or an accuracy counted from NaN or Inf outputs would be a guess
                log.warning(
                    "epoch %d: the outputs for %d validation examples are NaN or Inf; "
                    "their cost and accuracy are recorded as NaN",
                    epoch,
                    int(bad),
                )
            n = validation[0].shape[0]
            history.val_cost.append(cost / n if not bad else math.nan)
            history.val_accuracy.append(correct / n if not bad else math.nan)
        history.seconds.append(seconds)
        line = f"epoch {epoch}/{self.run.epochs}: cost {history.train_cost[-1]:.4f}"
        if validation is not None:
            line += f", validation cost {history.val_cost[-1]:.4f}, accuracy {history.val_accuracy[-1]:.2%}"
        if self.speaks:
            log.info("%s (%.2f s, %.0f examples/s)", line, seconds, self.run.examples / seconds)

    def _state(self) -> list[Any]:
        """What an update changes: θ, and the velocities when there is momentum."""
        return [self.theta] if self.velocity is None else [self.theta, self.velocity]

    def _order(self) -> Any:
        """This epoch's order of the examples: a permutation drawn on the device from the
        seed and the number of epochs trained so far (so it needs no state beyond those
        two, and every rank draws the same), or None for the data's own order."""
        if not self.run.shuffle:
            return None
        seed = np.random.SeedSequence([self.net.seed, self.net._epochs_trained]).generate_state(1)[0]
        return self.xp.random.RandomState(int(seed)).permutation(self.run.examples)

    def _batches(self, order: Any) -> Iterator[tuple[int, Any, Any]]:
        """``(m, x, y)`` for each mini-batch in ``order``: its size, and its examples as
        columns (in a data-parallel run, this rank's contiguous share of them). They are
        gathered as needed, a block of mini-batches at a time (fewer calls for small ones,
        and hot in cache for their steps), so that the data set is never copied whole."""
        X, Y, m, n = self.data.X, self.data.Y, self.run.batch_size, self.run.examples
        if order is None or self.group is not None:
            for k in range(0, n, m):
                size = min(m, n - k)
                lo, hi = (0, size) if self.group is None else self.group.slice(size)
                index = order[k + lo : k + hi] if order is not None else slice(k + lo, k + hi)
                rows = (X[index], Y[index]) if order is None else (X.take(index, axis=0), Y.take(index, axis=0))
                yield size, rows[0].T, rows[1].T
            return
        block = m * max(1, _BLOCK_BYTES // (m * X.shape[1] * X.itemsize))
        for start in range(0, n, block):
            index = order[start : start + block]
            Xb, Yb = X.take(index, axis=0), Y.take(index, axis=0)
            for k in range(0, Xb.shape[0], m):
                yield min(m, Xb.shape[0] - k), Xb[k : k + m].T, Yb[k : k + m].T

    def _diverged(self, epoch: int, snapshot: list[Any]) -> None:
        """Replay the epoch from its snapshot, checking after every mini-batch, to find the
        first one that produced a NaN or Inf; leave the parameters as they were before it
        and raise :class:`DivergenceError` (on every rank, at the same mini-batch)."""
        state = self._state()
        _assign(state, snapshot)
        batches, eta = -(-self.run.examples // self.run.batch_size), self.run.eta_at(epoch)
        for index, (m, x, y) in enumerate(self._batches(self._order()), start=1):
            before = [p.copy() for p in state]
            a = self.step(x, y, eta, m)
            if min(self._gathered(float(backend.to_numpy(self._finite(a))))) != 1.0:
                _assign(state, before)
                where = f"mini-batch {index} of {batches}"
                break
        else:  # not reproduced: fall back to the epoch's start
            _assign(state, snapshot)
            index, where = None, "a mini-batch that a replay could not pin down"
        largest = float(backend.to_numpy(abs(self.data.X).max()))  # every rank holds all the data
        raise DivergenceError(
            f"training diverged in epoch {epoch}, {where}: an output or a parameter became NaN or Inf. "
            f"The network keeps its last finite parameters. {self._cause(eta, largest)}",
            epoch=epoch,
            batch=index,
            history=self.history,
        )

    def _gathered(self, value: float) -> list[float]:
        """``value`` of every rank (a collective in a data-parallel run)."""
        return [value] if self.group is None else [v[0] for v in self.group.gather([value])]

    def _cause(self, eta: float, largest: float) -> str:
        """What most likely made training diverge, and what to change."""
        shrink = 1.0 - eta * self.run.decay  # each step's factor on w from the L2 term
        if shrink <= -1.0:
            return (
                f"The L2 term alone makes w grow: each step multiplies w by 1 - eta*lmbda/N = {shrink:g}, "
                f"beyond -1; try a smaller lmbda (lmbda={self.run.lmbda:g}) or learning rate (eta={eta:g} in that epoch)."
            )
        if largest > 1e6:
            return (
                f"Its inputs reach {largest:.3g}: scale the data (to about [0, 1]), "
                f"or try a smaller learning rate (eta={eta:g} in that epoch)."
            )
        return f"Try a smaller learning rate (eta={eta:g} in that epoch)."


def _assign(targets: list[Any], values: list[Any]) -> None:
    """Copy ``values`` into the arrays ``targets``, in place."""
    for t, v in zip(targets, values):
        t[...] = v
