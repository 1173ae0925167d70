"""Mini-batch training: the epoch loop, the update step, early stopping and divergence
replay, for a run described in `xpbp.runs`.

For each mini-batch of m examples, with ∇C from BP1–BP4 (`xpbp.workspace`), the
regularisation term added (`xpbp.regularization`) and the optimizer's update
(`xpbp.optimizers`); by default SGD with momentum μ::

    v ← μv − η(∇C + (λ/N) w),   w ← w + v        (b likewise, without the λ term)

With μ = 0 this is Nielsen's update, w ← (1 − ηλ/N) w − η∇C. Each epoch takes its
order of the examples from `xpbp.draws.order` (drawn on the host, sent once),
gathers the mini-batches from it in blocks of a few of them, and ends with one host
transfer of its statistics: nothing crosses between host and device inside the batch
loop. The trainer never touches the network: it is given the network's parts
(`xpbp.model.Model`, its θ as `xpbp.workspace.Parameters`, its
workspace) and gives back where the run ended (`seed`, `epochs_trained`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from . import backend, draws, formats, threads
from .checkpoints import Checkpoints
from .distributed import Group
from .expand import Expansion
from .runs import DeviceMemoryError, DivergenceError, Held, History, Plan, State
from .stopping import Watch
from .workspace import Parameters, Workspace

__all__ = ["Batch", "Trainer"]

log = logging.getLogger("xpbp.network")  # the logger users already listen to
_TINY = 1e-300  # a floor for sums of sample weights, so that a mini-batch weighing nothing changes nothing


class Batch(NamedTuple):
    """A mini-batch of `m` examples: `x` and `y` as columns (in a data-parallel run, this
    rank's contiguous share of them), their `rows` in the data (needed for dropout and
    expansion; None in the data's own order), and with sample weights `weight`, theirs
    divided by the whole mini-batch's total, `(1, share)`, and that `total` (0-d), on the device.
    A named tuple rather than a frozen dataclass: one is made per step, and it is made in a third of the time."""

    m: int
    x: Any
    y: Any
    rows: Any = None
    weight: Any = None
    total: Any = None


class Trainer:
    """One run of `fit`: the plan, carried out on θ (`params`, updated in place) with
    the network's `workspace` (made here when None), from its `seed` and
    `epochs_trained`. Make it and use it with the network's device current; in a
    data-parallel run, on every rank alike."""

    def __init__(self, plan: Plan, params: Parameters, workspace: Workspace | None, seed: int, epochs_trained: int) -> None:
        self.plan, self.run, self.data, self.execution = plan, plan.run, plan.data, plan.execution
        self.model, self.task, self.optimizer, self.penalty = plan.model, plan.task, plan.optimizer, plan.penalty
        self.params, self.xp = params, plan.model.xp
        self.seed, self.epochs_trained = seed, epochs_trained
        self.history, self.watch, self.group = History(), Watch(), self.execution.group
        self.finished = False  # whether the run has ended: after its last epoch, or stopped early
        self.validation: Held | None = self.data.validation
        self._rows: np.ndarray | None = None  # with a validation split, the rows of the data trained on
        self._identity: formats.Identity | None = None
        with self._memory():
            self._allocate(workspace)
        if self.group is not None:
            self._join(self.group)

    def _allocate(self, workspace: Workspace | None) -> None:
        """The run's buffers: the workspace's (a new one, unless the network keeps one from
        its last run), the optimizer's, the regularisation term's, and early stopping's
        copy of the best θ."""
        model = self.model
        self.workspace = workspace or Workspace(
            model.sizes, model.sigmas, model.cost, model.xp, model.dtype, backend.block_bytes(model.device)
        )
        self.theta = self.params.theta
        self.weights, self.biases = self.workspace.layout.split(self.params.views)
        self.workspace.keep(self.run.batch_sizes)
        self.optimizer.start(self.theta)
        k = self.workspace.layout.weights  # the weights come first in θ and ∇C
        self._theta_w, self._grad_w = self.theta[:k], self.workspace.grad[:k]
        self._scratch = self.xp.empty(k, dtype=self.model.dtype) if self.penalty is not None else None
        self.best = self.xp.empty_like(self.theta) if self.run.watching else None  # the best epoch's θ, kept at the end
        widths = list(self.model.sizes[1:-1])
        self.dropout = draws.Dropout(self.run.dropout, widths, self.model.device, self.model.dtype) if self.run.dropout else None
        run = self.run
        self.expansion = (
            Expansion(run.image_height, run.image_width, run.shift, run.mirror, model.device) if run.expanding else None
        )
        self._mine = None  # the positions of this rank's examples in each epoch's order
        self._term: Any = None  # with decay_over="batch", the epoch's regularisation term so far (on the device)

    @contextlib.contextmanager
    def _memory(self) -> Iterator[None]:
        """Report running out of memory as `DeviceMemoryError`, naming what needed it."""
        try:
            yield
        except MemoryError as e:
            model, run = self.model, self.run
            raise DeviceMemoryError(
                f"out of memory on {model.device} training layers {list(model.sizes)} with batch_size={run.batch_size} "
                f"({self.data.train.X.shape[0]} examples on the device): try a smaller batch_size ({e})"
            ) from e

    def _join(self, group: Group) -> None:
        """Start a data-parallel run: check that every rank has the same run and data, then
        take rank 0's parameters, seed and epoch count, and this rank's share of the data."""
        run = self.run
        group.same("the network", dataclasses.replace(self.plan.config, seed=0))
        group.same("the settings of fit", run)
        group.same("the optimizer", self.optimizer.spec())
        group.same("the data (shapes and fingerprints)", (self.data.train.X.shape, self.data.fingerprints(self.xp)))
        group.broadcast(self.theta)
        self.seed, self.epochs_trained = group.share((self.seed, self.epochs_trained))
        mine = [
            np.arange(k + lo, k + hi)
            for k in range(0, run.examples, run.batch_size)
            for lo, hi in [group.slice(min(run.batch_size, run.examples - k))]
        ]
        self._mine = backend.to_device(np.concatenate(mine), self.model.device)

    # ------------------------------------------------------------------ what checkpoints see

    @property
    def speaks(self) -> bool:
        """Whether this process logs, shows progress and writes checkpoints: rank 0 of a
        data-parallel run."""
        return self.group is None or self.group.rank == 0

    def identity(self) -> formats.Identity:
        """What the run's checkpoints record of it, and what resuming must match; computed
        once (its fingerprints cost a pass over the data)."""
        if self._identity is None:
            self._identity = formats.Identity(self.plan.config, self.run, self.optimizer.spec(), self.data.fingerprints(self.xp))
        return self._identity

    def state(self, epoch: int) -> State:
        """Where the run stands after `epoch`, on the host, in one transfer."""
        step, buffers = self.optimizer.state()
        parts = [self.theta, *buffers] + ([self.best] if self.best is not None else [])
        host = backend.to_numpy(self.xp.concatenate(parts)).reshape(len(parts), -1)
        best = host[-1] if self.best is not None else None
        history = copy.deepcopy(self.history)  # a record of this moment, which the run's own goes on from
        return State(
            epoch, self.epochs_trained, self.seed, host[0], step, tuple(host[1 : 1 + len(buffers)]), history, self.watch, best
        )

    def restore(self, state: State) -> None:
        """Take a checkpoint's state whole (it was checked: nothing here can fail half-way)."""
        self.theta[...] = backend.to_device(state.theta, self.model.device)
        self.optimizer.restore(state.step, [backend.to_device(s, self.model.device) for s in state.slots])
        if self.best is not None and state.best is not None:
            self.best[...] = backend.to_device(state.best, self.model.device)
        self.seed, self.epochs_trained, self.watch, self.history = state.seed, state.epochs_trained, state.watch, state.history
        self.finished = state.epoch == self.run.epochs or state.history.stopped_early

    # ------------------------------------------------------------------ the run

    def train(self, checkpoints: Checkpoints | None = None) -> History:
        """The remaining epochs of the run: all, unless `checkpoints` resumes it, which
        also records the run as it goes."""
        if self.group is not None:  # before any collective of the checkpoints', which every rank must make alike
            saving = (checkpoints is not None, *((checkpoints.every, checkpoints.resume) if checkpoints else ()))
            self.group.same("the checkpoint settings (whether to checkpoint, checkpoint_every, resume)", saving)
        done = checkpoints.start(self) if checkpoints is not None else 0
        if self.run.validation_fraction:
            self._carve()
        with self.running():
            for epoch in range(done + 1, self.run.epochs + 1):
                if self.finished:
                    break
                self.epoch(epoch)  # the overflow that NumPy would warn of surfaces as DivergenceError
                self._watch(epoch)
                if checkpoints is not None:
                    checkpoints.after(self, epoch)
        return self.history

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """What every epoch runs under: the device's memory errors made `DeviceMemoryError`,
        NumPy's overflow warnings left to the divergence check, and the run's BLAS threads.
        For callers that run `epoch` themselves."""
        with (
            self._memory(),
            np.errstate(over="ignore", invalid="ignore"),
            threads.limit(self.model.device, self.execution.threads),
        ):
            yield

    def _carve(self) -> None:
        """Hold out the validation split, from the seed (rank 0's, or the checkpoint's)."""
        self._rows, self.validation = self.data.carve(self.seed, self.run.validation_fraction, self.data.labels())

    def _watch(self, epoch: int) -> None:
        """After `epoch`: follow the monitored score; at the run's end with early stopping
        (its last epoch, or `early_stopping` epochs without improvement, or η halved to
        1/128), keep the best epoch's parameters."""
        run, history = self.run, self.history
        self.finished = epoch == run.epochs
        if not run.watching:
            return
        before = self.watch
        self.watch = before.seen(
            epoch, getattr(history, run.monitor)[-1], higher=run.higher, tol=run.tol, halve_after=run.halve_eta
        )
        if self.best is not None and self.watch.best_epoch == epoch:
            self.best[...] = self.theta
        if self.watch.halvings > before.halvings and self.speaks:
            log.info(
                "epoch %d: %s has not improved in %d epochs: η halved to %g",
                epoch,
                run.monitor,
                run.halve_eta,
                run.eta_at(epoch + 1, self.watch),
            )
        stops = self.watch.stops(run.early_stopping, run.halve_eta)
        self.finished = self.finished or stops
        if self.best is not None:
            history.best_epoch = self.watch.best_epoch or None
        if self.finished and self.best is not None and self.watch.best_epoch:
            self.theta[...] = self.best  # the best epoch's parameters
        if stops and epoch < run.epochs:
            history.stopped_early = True
            if self.speaks:
                log.info(
                    "stopping early after epoch %d: keeping the parameters of epoch %d (%s %.4g)",
                    epoch,
                    self.watch.best_epoch,
                    run.monitor,
                    self.watch.best,
                )

    def step(self, batch: Batch, eta: float) -> Any:
        """One update on a mini-batch; returns its output activations aᴸ from before the
        update (a work buffer, valid until the next step).

        θ, ∇C and the optimizer's state each lie in one buffer laid out alike, so each line
        of the update is one operation (or kernel) for the whole network."""
        grad, factor, run = self.workspace.grad, self.optimizer.scale(eta), self.run
        m = batch.x.shape[1]
        masks = self.dropout.masks(self._keys, batch.rows, self.workspace.masks(m)) if self.dropout is not None else None
        # ∇C of the mini-batch's (weighted) mean cost, times η for SGD
        scale = factor / batch.m if batch.weight is None else factor
        a = self.workspace.backprop(self.weights, self.biases, batch.x, batch.y, scale, masks, batch.weight)
        if self.group is not None:
            self.group.allreduce(grad)  # the sum of the ranks' shares: the whole mini-batch's
        if self.penalty is not None:
            decay = self._decay(batch)
            self.penalty.add(self._grad_w, self._theta_w, factor * decay, self._scratch)  # + (λ/N) w for L2
            if run.decay_over == "batch":  # the term as scikit-learn counts it: each mini-batch's, before its step
                self._term = self._term + self.penalty.cost(self.weights, decay) * batch.m
        self.optimizer.update(self.theta, grad, eta)
        return a

    def gradient(self) -> tuple[Any, Any]:
        """The whole training data's mean (weighted) cost, with the regularisation term, and
        its gradient: a 0-d array and the flat ∇C buffer (valid until the next call), on the
        device; nothing is updated. For full-batch optimizers (`xpbp.lbfgs`)."""
        batch = next(self._batches(None))
        if batch.m != self.run.examples:
            raise ValueError(f"gradient() takes the whole data at once: batch_size must be N ({self.run.examples})")
        scale = 1.0 / batch.m if batch.weight is None else 1.0
        a = self.workspace.backprop(self.weights, self.biases, batch.x, batch.y, scale, None, batch.weight)
        cost = self._training_cost(a, None)
        if self.penalty is not None:
            decay = self._decay(batch)
            self.penalty.add(self._grad_w, self._theta_w, decay, self._scratch)
            cost = cost + self.penalty.cost(self.weights, decay)
        return cost, self.workspace.grad

    def _decay(self, batch: Batch) -> Any:
        """λ over the data's N examples (Nielsen's), or over the mini-batch (its m, or its
        total sample weight: scikit-learn's α)."""
        if self.run.decay_over == "data":
            return self.run.decay
        return self.run.lmbda / batch.m if batch.total is None else self.run.lmbda / self.xp.maximum(batch.total, _TINY)

    def epoch(self, epoch: int, *, order: Any = None, eta: float | None = None) -> None:
        """One pass over the data, then its statistics in one host transfer (and, in a
        data-parallel run, one small collective). A caller that draws the order of the
        examples and sets η itself (`xpbp.sklearn`) passes `order`, a permutation of
        the training rows on the host, and `eta`; by default they are the run's."""
        model, run, xp = self.model, self.run, self.xp
        eta = run.eta_at(epoch, self.watch) if eta is None else eta
        start = time.perf_counter()
        snapshot = self._snapshot()  # the last finite state, should this epoch diverge
        order = self._order() if order is None else backend.to_device(np.asarray(order, dtype=np.int64), model.device)
        if self.dropout is not None:
            self._keys = self.dropout.keys(self.seed, self.epochs_trained)  # this epoch's
        if self.expansion is not None:
            self._moves = self.expansion.key(self.seed, self.epochs_trained)
        mine = self._examples(order)  # which examples this process trains on, in the order it does
        outputs = xp.empty((model.sizes[-1], run.examples if mine is None else mine.shape[0]), dtype=model.dtype)
        k = 0  # each mini-batch's aᴸ, as it was trained on, goes to outputs[:, k:]
        with tqdm(
            total=run.examples,
            desc=f"epoch {epoch}/{run.epochs}",
            unit="ex",
            unit_scale=True,
            leave=False,
            disable=not (self.execution.progress and self.speaks),
        ) as bar:
            self._term = xp.zeros((), dtype=model.dtype)
            for batch in self._batches(order):
                outputs[:, k : k + batch.x.shape[1]] = self.step(batch, eta)
                k += batch.x.shape[1]
                bar.update(batch.m)
        # The training cost in one pass at the end, not a handful of calls per step; then
        # whether every parameter and output is still finite.
        stats = [self._training_cost(outputs, mine), self._finite(outputs)]
        if self.penalty is not None:
            term = self.penalty.cost(self.weights, run.decay) if run.decay_over == "data" else self._term / run.examples
            stats.append(term)
        parts = [xp.stack(stats)]
        if self.validation is not None:
            parts.append(self._held_out(self.validation))
        values = backend.to_numpy(xp.concatenate(parts)).tolist()  # the epoch's one host synchronisation
        values, seconds = self._combine(values, time.perf_counter() - start)
        if values[1] != 1.0:
            self._diverged(epoch, snapshot, order, eta)
        self.epochs_trained += 1
        self._record(epoch, values, seconds)

    def _training_cost(self, outputs: Any, mine: Any) -> Any:
        """The mean cost of the epoch's outputs against their targets (weighted by the
        sample weights, when there are some), on the device."""
        targets = self.data.train.targets
        Y = targets.Y if mine is None else targets.Y.take(mine, axis=0)
        costs = self.model.cost.fn(outputs, Y.T)
        if targets.weight is None:
            return costs.sum() / self.run.examples
        w = targets.weight if mine is None else targets.weight.take(mine)
        return (costs * w).sum() / self.xp.maximum(w.sum(), _TINY)

    def _finite(self, a: Any) -> Any:
        """1 when θ and `a` hold no NaN or Inf, else 0: on the device, in the network's dtype."""
        xp = self.xp
        return (xp.isfinite(self.theta).all() & xp.isfinite(a).all()).astype(self.model.dtype)

    def _examples(self, order: Any) -> Any:
        """This process's examples in this epoch's order, or None for all of them in the data's."""
        if order is None or self._mine is None:
            return order if self._mine is None else self._mine
        return order.take(self._mine)

    def _held_out(self, held: Held) -> Any:
        """The validation totals (`xpbp.model.Model.totals`) of the rows this process
        evaluates: all, or this rank's contiguous share."""
        rows = slice(None) if self.group is None else slice(*self.group.slice(held.X.shape[0]))
        return self.model.totals(self.weights, self.biases, self.task, held.X[rows], held.targets.part(rows))

    def _combine(self, values: list[float], seconds: float) -> tuple[list[float], float]:
        """The epoch's statistics of all ranks, in one small collective: the training cost
        and the validation totals summed, finite only if finite on every rank, the
        regularisation term (the same on every rank) taken from rank 0, and the longest time."""
        if self.group is None:
            return values, seconds
        ranks = self.group.gather(values + [seconds])
        summed = [sum(v[i] for v in ranks) for i in range(len(values))]
        finite = min(v[1] for v in ranks)
        term = ranks[0][2:3] if self.penalty is not None else []
        combined = [summed[0], finite, *term, *summed[2 + len(term) :]]
        return combined, max(v[-1] for v in ranks)

    def _record(self, epoch: int, values: list[float], seconds: float) -> None:
        history, held = self.history, self.validation
        history.train_cost.append(values[0] + (values[2] if self.penalty is not None else 0.0))
        line = f"epoch {epoch}/{self.run.epochs}: cost {history.train_cost[-1]:.4f}"
        if held is not None:
            totals = values[3 if self.penalty is not None else 2 :]
            cost, bad, task = totals[0], totals[1], totals[2:]
            if bad and self.speaks:  # a cost or a score counted from NaN or Inf outputs would be a guess
                log.warning(
                    "epoch %d: the outputs for %d validation examples are NaN or Inf; their cost and %s are recorded as NaN",
                    epoch,
                    int(bad),
                    " and ".join(self.task.scores),
                )
            n = held.X.shape[0]
            history.val_cost.append(cost / n if not bad else math.nan)
            line += f", validation cost {history.val_cost[-1]:.4f}"
            for name, score in self.task.score(task, n).items():
                getattr(history, f"val_{name}").append(score if not bad else math.nan)
                line += f", {name} {score:.2%}" if name == "accuracy" else f", {name} {score:.4g}"
        history.seconds.append(seconds)
        if self.speaks:
            log.info("%s (%.2f s, %.0f examples/s)", line, seconds, self.run.examples / seconds)

    def _snapshot(self) -> tuple[list[Any], int]:
        """What an update changes, copied: θ and the optimizer's buffers, and its step count."""
        step, buffers = self.optimizer.state()
        return [a.copy() for a in (self.theta, *buffers)], step

    def _put(self, snapshot: tuple[list[Any], int]) -> None:
        """Put a `_snapshot` back."""
        arrays, step = snapshot
        _assign([self.theta, *self.optimizer.state()[1]], arrays)
        self.optimizer.step = step

    def _order(self) -> Any:
        """This epoch's order of the examples, as rows of the data on the device: a
        permutation from the seed and the number of epochs trained so far (so it needs no
        state beyond those two, and every rank draws the same); or, unshuffled, the rows
        trained on in the data's order (None for all of them)."""
        rows = self._rows
        if not self.run.shuffle:
            if rows is None and self.dropout is None and self.expansion is None:
                return None
            order = np.arange(self.run.examples) if rows is None else rows
        else:
            order = draws.order(self.seed, self.epochs_trained, self.run.examples)
            order = order if rows is None else rows[order]
        return backend.to_device(order, self.model.device)

    def _batches(self, order: Any) -> Iterator[Batch]:
        """Each mini-batch in `order`. They are gathered as needed, a block of mini-batches
        at a time (fewer calls for small ones, and hot in cache for their steps), so that the
        data set is never copied whole."""
        X, Y, m, n = self.data.train.X, self.data.train.targets.Y, self.run.batch_size, self.run.examples
        if order is None or self.group is not None:
            for k in range(0, n, m):
                size = min(m, n - k)
                lo, hi = (0, size) if self.group is None else self.group.slice(size)
                if order is None:
                    yield self._weighed(Batch(size, X[k + lo : k + hi].T, Y[k + lo : k + hi].T), slice(k, k + size), lo, hi)
                else:
                    index = order[k + lo : k + hi]
                    x = self._moved(index, X.take(index, axis=0)).T
                    yield self._weighed(Batch(size, x, Y.take(index, axis=0).T, index), order[k : k + size], lo, hi)
            return
        block = m * max(1, backend.gather_bytes(self.model.device) // (m * X.shape[1] * X.itemsize))
        plain = self.expansion is None and self.data.train.targets.weight is None  # the step's fast path
        for start in range(0, n, block):
            index = order[start : start + block]
            Xb, Yb = X.take(index, axis=0), Y.take(index, axis=0)
            for k in range(0, Xb.shape[0], m):
                rows = index[k : k + m]
                if plain:
                    yield Batch(rows.shape[0], Xb[k : k + m].T, Yb[k : k + m].T, rows)
                    continue
                batch = Batch(rows.shape[0], self._moved(rows, Xb[k : k + m]).T, Yb[k : k + m].T, rows)
                yield self._weighed(batch, rows, 0, rows.shape[0])

    def _weighed(self, batch: Batch, rows: Any, lo: int, hi: int) -> Batch:
        """`batch` with its sample weights, when the run has some: those of the whole
        mini-batch's `rows` (an index or a slice of the data) sum to its total, and this
        process's share is `[lo, hi)` of them."""
        weight = self.data.train.targets.weight
        if weight is None:
            return batch
        w = weight[rows] if isinstance(rows, slice) else weight.take(rows)
        total = w.sum()
        share = (w[lo:hi] / self.xp.maximum(total, _TINY)).reshape(1, -1)
        return batch._replace(weight=share, total=total)

    def _moved(self, rows: Any, X: Any) -> Any:
        """The examples `X` (rows `rows` of the data), shifted and mirrored when the run expands its data."""
        return X if self.expansion is None else self.expansion.apply(self._moves, rows, X)

    def _diverged(self, epoch: int, snapshot: tuple[list[Any], int], order: Any, eta: float) -> None:
        """Replay the epoch (in its `order`, at its `eta`) from its snapshot, checking after every mini-batch, to find the
        first one that produced a NaN or Inf; leave the parameters as they were before it
        and raise `DivergenceError` (on every rank, at the same mini-batch)."""
        self._put(snapshot)
        batches = -(-self.run.examples // self.run.batch_size)
        for index, batch in enumerate(self._batches(order), start=1):
            before = self._snapshot()
            a = self.step(batch, eta)
            if min(self._gathered(float(backend.to_numpy(self._finite(a))))) != 1.0:
                self._put(before)
                where = f"mini-batch {index} of {batches}"
                break
        else:  # not reproduced: fall back to the epoch's start
            self._put(snapshot)
            index, where = None, "a mini-batch that a replay could not pin down"
        X = self.data.train.X  # every rank holds all the data; its extremes need no copy of it
        largest = float(backend.to_numpy(self.xp.maximum(abs(X.min()), abs(X.max()))))
        raise DivergenceError(
            f"training diverged in epoch {epoch}, {where}: an output or a parameter became NaN or Inf. "
            f"The network keeps its last finite parameters. {self._cause(eta, largest)}",
            epoch=epoch,
            batch=index,
            history=self.history,
        )

    def _gathered(self, value: float) -> list[float]:
        """`value` of every rank (a collective in a data-parallel run)."""
        return [value] if self.group is None else [v[0] for v in self.group.gather([value])]

    def _cause(self, eta: float, largest: float) -> str:
        """What most likely made training diverge, and what to change."""
        shrink = 1.0 - eta * self.run.decay  # each step's factor on w from the L2 term
        if self.run.lmbda and self.run.regularization == "l2" and self.optimizer.name == "sgd" and shrink <= -1.0:
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
    """Copy `values` into the arrays `targets`, in place."""
    for t, v in zip(targets, values):
        t[...] = v
