"""A fully-connected network trained by backpropagation, equations BP1–BP4.

Nielsen, *Neural Networks and Deep Learning*, ch. 2, vectorized over a mini-batch:
x is a matrix whose m columns are examples, so every z, a and δ below is a matrix
with m columns and each equation is one matrix product or elementwise operation.

    z  = w a + b                              (feedforward)
    δᴸ = ∇ₐC ⊙ σ′(zᴸ)                        (BP1)
    δˡ = ((wˡ⁺¹)ᵀ δˡ⁺¹) ⊙ σ′(zˡ)             (BP2)
    ∂C/∂bˡ = δˡ, summed over the columns     (BP3)
    ∂C/∂wˡ = δˡ (aˡ⁻¹)ᵀ                      (BP4)

The same code runs on NumPy and CuPy: ``self.xp`` is the array module of the
network's device, and data crosses the host/device boundary only at the public
methods' edges.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from . import activations as _activations
from . import backend
from . import costs as _costs
from . import files

__all__ = ["DeviceMemoryError", "DivergenceError", "History", "Network", "load"]

log = logging.getLogger(__name__)

MODEL = ("xpbp-model", 1)  # format name and version of model files
CHECKPOINT = ("xpbp-checkpoint", 1)  # ... and of checkpoints
_CHUNK = 8192  # examples per forward pass in predict/evaluate, to bound device memory
# The momentum update, v ← μv − η∇C then w ← w + v, as one kernel where the device has them.
_MOMENTUM = backend.Elementwise("T grad, T mu", "T theta, T v", "v = mu * v - grad; theta += v", "xpbp_momentum")


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


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _real(value: Any, name: str, low: float, high: float = float("inf"), *, high_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not (low <= v and (v < high if high_open else v <= high)):
        bound = f"[{low}, {high})" if high_open else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


def _all_finite(a: Any) -> bool:
    """No NaN or Inf in ``a``, checked where ``a`` lives: free for host data, one
    transfer of a flag for device data."""
    return bool(backend.to_numpy(backend.get_array_module(a).isfinite(a).all()))


def _real_array(a: Any, name: str) -> Any:
    """``a`` as an array (DLPack objects shared without a copy, other host data as NumPy),
    refusing what is not real numbers before it reaches a device."""
    try:
        a = backend.as_array(a)
    except (TypeError, ValueError, BufferError, RuntimeError) as e:
        raise TypeError(f"{name} must be an array of real numbers; converting it failed: {e}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a


class Network:
    """A fully-connected feedforward network.

    Parameters
    ----------
    sizes : layer widths, input first, e.g. ``[784, 30, 10]``.
    activation : σ of the hidden layers: ``"sigmoid"``, ``"tanh"``, ``"relu"`` or ``"identity"``.
    output_activation : σ of the output layer; defaults to ``activation``; may be ``"softmax"``.
    cost : ``"quadratic"``, ``"cross_entropy"`` (sigmoid output) or ``"log_likelihood"`` (softmax output).
    init : ``"scaled"`` (w ~ N(0, 1/n_in), b ~ N(0, 1), Nielsen's network2) or ``"large"`` (all N(0, 1)).
    dtype : ``"float32"`` or ``"float64"``.
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    seed : seeds the initial weights and every epoch's shuffle; drawn at random when None
        (and kept in ``net.seed``, so a run can be repeated).

    ``net.weights[l]`` (shape ``(sizes[l+1], sizes[l])``) and ``net.biases[l]`` (``(sizes[l+1], 1)``)
    are arrays on the device. ``fit`` trains them in place as views of one buffer; an array
    put in their place is copied into that buffer when ``fit`` next starts.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        activation: str = "sigmoid",
        output_activation: str | None = None,
        cost: str = "quadratic",
        init: str = "scaled",
        dtype: str = "float32",
        device: str = "auto",
        seed: int | None = None,
    ) -> None:
        self._configure(sizes, activation=activation, output_activation=output_activation, cost=cost, init=init,
                        dtype=dtype, device=device, seed=seed)
        # Drawn on the host in float64, so a seed gives the same network on every device and dtype.
        rng = np.random.default_rng(self.seed)
        scale = [1.0 / np.sqrt(n) if init == "scaled" else 1.0 for n in self.sizes[:-1]]
        self.weights = [self._put(rng.standard_normal((n, k)) * s) for k, n, s in zip(self.sizes[:-1], self.sizes[1:], scale)]
        self.biases = [self._put(rng.standard_normal((n, 1))) for n in self.sizes[1:]]

    def _configure(self, sizes, *, activation, output_activation, cost, init, dtype, device, seed) -> None:
        """Everything but the parameters, validated (``load`` reads those from its file)."""
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
            raise ValueError(f"sizes must be a list of at least two layer widths, e.g. [784, 30, 10], got {sizes!r}")
        self.sizes = [_positive_int(n, f"sizes[{i}]") for i, n in enumerate(sizes)]
        if activation not in _activations.HIDDEN:
            raise ValueError(
                f"activation (of the hidden layers) must be one of {', '.join(map(repr, _activations.HIDDEN))}, "
                f"got {activation!r}" + ("; softmax is for the output layer: output_activation='softmax'" if activation == "softmax" else "")
            )
        output_activation = activation if output_activation is None else output_activation
        self._output = _activations.get(output_activation, argument="output_activation")
        self._hidden = _activations.get(activation)
        self._cost = _costs.get(cost)
        self._sigmas = [self._hidden] * (len(self.sizes) - 2) + [self._output]  # σ of each layer after the input
        if self._cost.requires and self._output.name != self._cost.requires:
            raise ValueError(f"cost={cost!r} requires output_activation={self._cost.requires!r}, got {output_activation!r}")
        if self._output.name == "softmax" and cost != "log_likelihood":
            raise ValueError(f"output_activation='softmax' pairs only with cost='log_likelihood', got cost={cost!r}")
        if init not in ("scaled", "large"):
            raise ValueError(f"init must be 'scaled' or 'large', got {init!r}")
        try:
            self.dtype = None if dtype is None else np.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.activation, self.output_activation, self.cost_name, self.init = activation, output_activation, cost, init
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        self.device = backend.canonical(device)
        self.xp = backend.resolve(self.device)
        self._epochs_trained = 0
        self._work: dict = {}  # the training step's buffers, kept from step to step

    def __repr__(self) -> str:
        return (
            f"Network({self.sizes}, activation={self.activation!r}, output_activation={self.output_activation!r}, "
            f"cost={self.cost_name!r}, dtype={str(self.dtype)!r}, device={self.device!r})"
        )

    # ------------------------------------------------------------------ data at the boundary

    def _put(self, a: Any) -> Any:
        """``a`` on the network's device in its dtype (no copy when already so)."""
        return backend.to_device(a, self.device).astype(self.dtype, copy=False)

    def _matrix(self, a: Any, name: str, width: int, *, columns: bool, finite: bool = True) -> Any:
        """Validate a 2-D input and bring it to the device. ``columns``: examples are columns
        (shape ``(width, m)``), else rows (shape ``(N, width)``). ``finite=False`` checks for
        NaN and Inf only in host data, where it is free: the equations' own entry points
        (feedforward, backprop, cost) never synchronise with a device to validate."""
        a = _real_array(a, name)
        want = f"({width}, m)" if columns else f"(n_examples, {width})"
        if a.ndim != 2 or a.shape[0 if columns else 1] != width:
            raise ValueError(f"{name} must have shape {want}, got shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"{name} is empty: shape {a.shape}")
        narrowing = a.dtype.kind == "f" and a.dtype.itemsize > self.dtype.itemsize
        with np.errstate(over="ignore"):
            a = a.astype(self.dtype, copy=False)  # where the data lives, so the check below is free for host data
        if (finite or backend.device_of(a) == "cpu") and not _all_finite(a):
            beyond = f" (or values beyond the range of {self.dtype})" if narrowing else ""
            raise ValueError(f"{name} contains NaN or Inf{beyond}")
        return backend.to_device(a, self.device)

    def _targets(self, y: Any, n: int, name: str) -> tuple[Any, Any]:
        """``(Y, labels)`` for ``n`` examples: Y of shape ``(n, n_out)`` on the device and the
        integer labels ``(n,)``. ``y`` is labels (one-hot made on the device) or float targets
        (labels are their argmax)."""
        n_out = self.sizes[-1]
        y = _real_array(y, name)
        if y.ndim == 2:
            Y = self._matrix(y, name, n_out, columns=False)
            if Y.shape[0] != n:
                raise ValueError(f"{name} has {Y.shape[0]} rows but X has {n} examples")
            return Y, Y.argmax(axis=1)
        if y.ndim != 1:
            raise ValueError(f"{name} must be class labels of shape ({n},) or targets of shape ({n}, {n_out}), got shape {y.shape}")
        if y.shape[0] != n:
            raise ValueError(f"{name} has {y.shape[0]} labels but X has {n} examples")
        if y.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
        lo, hi = backend.to_numpy(backend.get_array_module(y).stack([y.min(), y.max()])).tolist()  # where y lives
        if lo < 0 or hi >= n_out:
            raise ValueError(f"{name} holds labels in [{lo}, {hi}], outside [0, {n_out - 1}] for {n_out} output neurons")
        xp, y = self.xp, backend.to_device(y, self.device)
        Y = xp.zeros((n, n_out), dtype=self.dtype)
        Y[xp.arange(n), y] = 1
        return Y, y

    def _pair(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Validate ``x`` ``(sizes[0], m)`` and ``y`` ``(sizes[-1], m)`` with equal m."""
        x = self._matrix(x, "x", self.sizes[0], columns=True, finite=False)
        y = self._matrix(y, "y", self.sizes[-1], columns=True, finite=False)
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"x has {x.shape[1]} columns (examples) but y has {y.shape[1]}")
        return x, y

    # ------------------------------------------------------------------ the equations

    def feedforward(self, a: Any) -> Any:
        """Output activations ``(sizes[-1], m)`` on the device for inputs ``a`` ``(sizes[0], m)``."""
        return self._feedforward(self._matrix(a, "a", self.sizes[0], columns=True, finite=False))

    def _feedforward(self, a: Any) -> Any:
        for w, b, sigma in zip(self.weights, self.biases, self._sigmas):
            z = w @ a
            z += b
            a = sigma.fn(z)  # a = σ(w a + b)
        return a

    def backprop(self, x: Any, y: Any) -> tuple[list[Any], list[Any]]:
        """``(nabla_b, nabla_w)``: the gradient of the mean cost C = (1/m) Σₓ Cₓ over the m
        columns of ``x`` ``(sizes[0], m)`` and ``y`` ``(sizes[-1], m)``, shaped like
        ``biases`` and ``weights``, on the device."""
        x, y = self._pair(x, y)
        nabla_b, nabla_w, _ = self._backprop(x, y, 1.0 / x.shape[1])
        return nabla_b, nabla_w

    def _backprop(self, x: Any, y: Any, scale: float, work: bool = False) -> tuple[list[Any], list[Any], Any]:
        """BP1–BP4 over a mini-batch, for the gradient of the summed cost times ``scale``
        (1/m gives the mean cost's; the training step folds η in too). Also returns aᴸ.

        With ``work`` (the training step's), every large intermediate is written into a
        buffer kept from one step to the next (see :meth:`_buffers`), and the returned
        nablas are views of the one gradient buffer: valid until the next call. Without
        it, everything is freshly allocated.
        """
        m, xp, L = x.shape[1], self.xp, len(self.weights)
        z_out, a_out, delta_out, b_out, w_out = self._buffers(m) if work else [[None] * L] * 5

        # Feedforward, storing every z and every activation, layer by layer.
        activation, activations, zs = x, [x], []
        for l, (w, b, sigma) in enumerate(zip(self.weights, self.biases, self._sigmas)):
            z = xp.matmul(w, activation, out=z_out[l])
            z += b
            activation = sigma.fn(z, out=a_out[l])
            zs.append(z)
            activations.append(activation)
        nabla_b, nabla_w = [None] * L, [None] * L
        # BP1, with the scale (1/m of the mean cost) folded in once; BP2 carries it to every layer.
        delta = self._cost.delta(zs[-1], activations[-1], y, self._output)  # BP1
        delta *= scale
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                delta = xp.matmul(self.weights[l + 1].T, delta, out=delta_out[l])
                # σ′(zˡ) is written over zˡ, which nothing needs after it.
                delta *= self._sigmas[l].prime(zs[l], activations[l + 1], out=zs[l])  # BP2
            nabla_b[l] = delta.sum(axis=1, keepdims=True, out=b_out[l])  # BP3
            nabla_w[l] = xp.matmul(delta, activations[l].T, out=w_out[l])  # BP4
        return nabla_b, nabla_w, activations[-1]

    def _buffers(self, m: int) -> tuple[list[Any], ...]:
        """The training step's work buffers for mini-batches of m examples, made on first
        use and kept: each layer's z and a, each hidden layer's δ (BP1's comes from the
        cost), m columns each; then the gradient, one contiguous buffer laid out like the
        parameters (see :meth:`_pack`) and seen as each layer's ∂C/∂b and ∂C/∂w."""
        if m not in self._work:
            xp, L = self.xp, len(self.weights)
            if "grad" not in self._work:
                grad, views = _carve(xp, [p.shape for p in self._params], self.dtype)
                self._work["grad"] = (grad, views[L:], views[:L])
            z, a, delta = ([xp.empty((w.shape[0], m), dtype=self.dtype) for w in weights]
                           for weights in (self.weights, self.weights, self.weights[:-1]))
            self._work[m] = (z, a, delta, *self._work["grad"][1:])
        return self._work[m]

    def _pack(self) -> Any:
        """Make every w and b a view of one contiguous buffer, returned, laid out like the
        gradient buffer, so that one operation updates them all. Kept from call to call
        unless a parameter array was replaced since (by ``load``, ``to`` or the user)."""
        theta, views = self._work.get("theta", (None, []))
        params = self._params
        if len(views) != len(params) or any(p is not v for p, v in zip(params, views)):
            theta, views = _carve(self.xp, [p.shape for p in params], self.dtype)
            _assign(views, params)
            L = len(self.weights)
            self.weights, self.biases = views[:L], views[L:]
            self._work["theta"] = (theta, views)
        return theta

    def cost(self, x: Any, y: Any) -> float:
        """The mean cost (1/m) Σₓ Cₓ over the m columns of ``x`` and ``y``, as a float."""
        x, y = self._pair(x, y)
        return float(backend.to_numpy(self._cost.fn(self._feedforward(x), y).mean()))

    # ------------------------------------------------------------------ training

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int,
        batch_size: int,
        eta: float,
        lmbda: float = 0.0,
        momentum: float = 0.0,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        progress: bool | None = None,
        eta_decay: float = 0.0,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
    ) -> History:
        """Mini-batch stochastic gradient descent with L2 weight decay and momentum.

        ``X`` is ``(N, sizes[0])`` with examples as rows; ``y`` is integer labels ``(N,)``
        or float targets ``(N, sizes[-1])``. For each mini-batch of m examples:
        v ← μv − η(∇C + (λ/N)w), w ← w + v, and the same for b without the λ term;
        with μ = 0 this is Nielsen's update. The data is moved to the device once;
        each epoch draws a seeded permutation on the device and gathers each mini-batch from it.

        ``eta_decay``: a learning-rate schedule (Nielsen, ch. 3), η/(1 + eta_decay·(e − 1))
        in epoch e; 0 keeps η constant.

        ``checkpoint``: a file rewritten atomically every ``checkpoint_every`` epochs (and
        after the last) with everything needed to go on: parameters, velocities, the
        shuffling state, the epoch and the history. ``resume=True`` continues from it
        (or starts afresh if it does not exist yet); ``epochs`` counts the whole run, so
        a resumed run ends bit-for-bit where an uninterrupted one would (on the CPU).

        Raises :class:`DivergenceError` if a cost or parameter becomes NaN or Inf (found
        with one check per epoch, then located by replaying that epoch) and
        :class:`DeviceMemoryError` if the device runs out of memory.
        """
        xp = self.xp
        X = self._matrix(X, "X", self.sizes[0], columns=False)
        n = X.shape[0]
        Y, _ = self._targets(y, n, "y")
        epochs = _positive_int(epochs, "epochs")
        batch_size = _positive_int(batch_size, "batch_size")
        if batch_size > n:
            raise ValueError(f"batch_size must be at most the number of examples ({n}), got {batch_size}")
        eta = _real(eta, "eta", 0.0)
        eta_decay = _real(eta_decay, "eta_decay", 0.0)
        lmbda = _real(lmbda, "lmbda", 0.0)
        mu = _real(momentum, "momentum", 0.0, 1.0, high_open=True)
        checkpoint_every = _positive_int(checkpoint_every, "checkpoint_every")
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=PATH, the file to resume from")
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            Xv = self._matrix(validation_data[0], "validation_data[0]", self.sizes[0], columns=False)
            validation = (Xv, *self._targets(validation_data[1], Xv.shape[0], "validation_data[1]"))
        if progress is None:
            progress = sys.stderr.isatty()

        run = {"examples": n, "epochs": epochs, "batch_size": batch_size, "eta": eta, "eta_decay": eta_decay,
               "lmbda": lmbda, "momentum": mu, "shuffle": shuffle}
        # The velocities of every w and b in one buffer, like the parameters (see _pack).
        velocity, velocities = _carve(xp, [p.shape for p in self._params], self.dtype) if mu else (None, [])
        history, done = History(), 0
        if resume and Path(checkpoint).exists():
            history, done = self._resume(checkpoint, run, velocities)
            log.info("resuming from %s after epoch %d of %d", checkpoint, done, epochs)
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow surfaces as DivergenceError instead
                for epoch in range(done + 1, epochs + 1):
                    self._epoch(X, Y, epoch, run, velocity, validation, history, progress)
                    if checkpoint is not None and (epoch % checkpoint_every == 0 or epoch == epochs):
                        self._checkpoint(checkpoint, epoch, run, velocities, history)
        except MemoryError as e:
            raise DeviceMemoryError(
                f"out of memory on {self.device} training layers {self.sizes} with batch_size={batch_size} "
                f"({n} examples on the device): try a smaller batch_size ({e})"
            ) from e
        return history

    @property
    def _params(self) -> list[Any]:
        """Every weight matrix, then every bias vector."""
        return self.weights + self.biases

    def _order(self, n: int, shuffle: bool) -> Any:
        """This epoch's order of the n examples: a permutation drawn on the device from the
        seed and the number of epochs trained so far (so it needs no state beyond those
        two), or None for the data's own order."""
        if not shuffle:
            return None
        seed = np.random.SeedSequence([self.seed, self._epochs_trained]).generate_state(1)[0]
        return self.xp.random.RandomState(int(seed)).permutation(n)

    def _batches(self, X: Any, Y: Any, m: int, order: Any):
        """The mini-batches ``(x, y)`` of m examples in ``order``, examples as columns.

        Each is gathered as needed (m rows at a time, hot in cache for the step that uses
        them), so the data set is never copied whole.
        """
        for k in range(0, X.shape[0], m):
            if order is None:
                yield X[k : k + m].T, Y[k : k + m].T
            else:
                index = order[k : k + m]
                yield X.take(index, axis=0).T, Y.take(index, axis=0).T

    def _epoch(self, X, Y, epoch, run, velocity, validation, history, progress) -> None:
        """One pass over the data, then its statistics in one host transfer."""
        xp, n, m = self.xp, run["examples"], run["batch_size"]
        eta, decay = _eta(run, epoch), run["lmbda"] / n
        start = time.perf_counter()
        theta = self._pack()
        snapshot = [a.copy() for a in _state(theta, velocity)]  # the last finite state, should this epoch diverge
        order = self._order(n, run["shuffle"])
        outputs = xp.empty((self.sizes[-1], n), dtype=self.dtype)  # each mini-batch's aᴸ, as it was trained on
        with tqdm(total=n, desc=f"epoch {epoch}/{run['epochs']}", unit="ex", unit_scale=True, leave=False, disable=not progress) as bar:
            for k, (x, y) in zip(range(0, n, m), self._batches(X, Y, m, order)):
                outputs[:, k : k + m] = self._step(x, y, eta, decay, run["momentum"], velocity)
                bar.update(x.shape[1])
        targets = Y if order is None else Y.take(order, axis=0)
        # The training cost in one pass at the end, not a handful of calls per step; then
        # θ's sum, which is finite iff every parameter is.
        stats = [self._cost.fn(outputs, targets.T).sum() / n, theta.sum()]
        if run["lmbda"]:
            stats.append(0.5 * decay * sum((w * w).sum() for w in self.weights))
        if validation is not None:
            stats.extend(self._totals(*validation))
        values = backend.to_numpy(xp.stack(stats)).tolist()  # the epoch's one host synchronisation
        if not all(map(math.isfinite, values[:2])):
            self._diverged(X, Y, epoch, run, velocity, snapshot, history)
        self._epochs_trained += 1
        history.train_cost.append(values[0] + (values[2] if run["lmbda"] else 0.0))
        if validation is not None:
            history.val_cost.append(values[-2] / validation[0].shape[0])
            history.val_accuracy.append(values[-1] / validation[0].shape[0])
        history.seconds.append(time.perf_counter() - start)
        line = f"epoch {epoch}/{run['epochs']}: cost {history.train_cost[-1]:.4f}"
        if validation is not None:
            line += f", validation cost {history.val_cost[-1]:.4f}, accuracy {history.val_accuracy[-1]:.2%}"
        log.info("%s (%.2f s, %.0f examples/s)", line, history.seconds[-1], n / history.seconds[-1])

    def _step(self, x: Any, y: Any, eta: float, decay: float, mu: float, velocity: Any) -> Any:
        """One gradient-descent update on a mini-batch; returns its output activations aᴸ from
        before the update (a work buffer, valid until the next step).

        The parameters, their gradient and their velocities each live in one buffer laid out
        alike (θ = all w, then all b), so each line of the update is one operation for the
        whole network: a handful of array calls (or kernel launches) per step, not a handful per layer.
        """
        a = self._backprop(x, y, eta / x.shape[1], work=True)[2]  # η∇C of the mean cost, into the gradient buffer
        theta, grad = self._work["theta"][0], self._work["grad"][0]
        if decay:
            k = sum(w.size for w in self.weights)  # the weights come first in θ
            if "decay" not in self._work:
                self._work["decay"] = self.xp.empty(k, dtype=self.dtype)
            grad_w = grad[:k]
            grad_w += self.xp.multiply(theta[:k], eta * decay, out=self._work["decay"])  # η(∇C + (λ/N) w)
        if velocity is None:
            theta -= grad  # w ← w − η∇C, b likewise
        elif (kernel := _MOMENTUM.on(theta)) is not None:
            kernel(grad, self.dtype.type(mu), theta, velocity)  # the three lines below, fused
        else:
            velocity *= mu  # v ← μv − η∇C
            velocity -= grad
            theta += velocity  # w ← w + v
        return a

    def _diverged(self, X, Y, epoch, run, velocity, snapshot, history) -> None:
        """Replay the epoch from its snapshot, checking after every mini-batch, to find the
        first one that produced a NaN or Inf; leave the parameters as they were before it
        and raise :class:`DivergenceError`."""
        state = _state(self._pack(), velocity)
        _assign(state, snapshot)
        n, m = run["examples"], run["batch_size"]
        batches = -(-n // m)
        for index, (x, y) in enumerate(self._batches(X, Y, m, self._order(n, run["shuffle"])), start=1):
            before = [p.copy() for p in state]
            a = self._step(x, y, _eta(run, epoch), run["lmbda"] / n, run["momentum"], velocity)
            if not math.isfinite(float(backend.to_numpy(self._cost.fn(a, y).sum() + state[0].sum()))):
                _assign(state, before)
                where = f"mini-batch {index} of {batches}"
                break
        else:  # not reproduced: fall back to the epoch's start
            _assign(state, snapshot)
            index, where = None, "a mini-batch that a replay could not pin down"
        raise DivergenceError(
            f"training diverged in epoch {epoch}, {where}: the cost or a parameter became NaN or Inf. "
            f"The network keeps its last finite parameters. Try a smaller learning rate (eta={_eta(run, epoch):g} in that epoch).",
            epoch=epoch, batch=index, history=history,
        )

    # ------------------------------------------------------------------ using a trained network

    def _totals(self, X: Any, Y: Any, labels: Any) -> list[Any]:
        """Summed cost and number of correct predictions over rows of X, on the device."""
        cost, correct = 0, 0
        for k in range(0, X.shape[0], _CHUNK):
            a = self._feedforward(X[k : k + _CHUNK].T)
            cost = cost + self._cost.fn(a, Y[k : k + _CHUNK].T).sum()
            correct = correct + (a.argmax(axis=0) == labels[k : k + _CHUNK]).sum()
        return [cost, correct.astype(self.dtype)]

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (the most active output neuron) for rows of ``X``, as NumPy ints."""
        X = self._matrix(X, "X", self.sizes[0], columns=False)
        labels = [self._feedforward(X[k : k + _CHUNK].T).argmax(axis=0) for k in range(0, X.shape[0], _CHUNK)]
        return backend.to_numpy(self.xp.concatenate(labels))

    def evaluate(self, X: Any, y: Any) -> float:
        """Accuracy, the fraction of rows of ``X`` whose predicted label matches ``y``."""
        X = self._matrix(X, "X", self.sizes[0], columns=False)
        Y, labels = self._targets(y, X.shape[0], "y")
        return float(backend.to_numpy(self._totals(X, Y, labels)[1])) / X.shape[0]

    # ------------------------------------------------------------------ devices and files

    def to(self, device: str) -> Network:
        """Move the parameters to ``device`` in place; returns the network."""
        self.device = backend.canonical(device)
        self.xp = backend.resolve(self.device)
        self._work = {}
        self.weights = [self._put(w) for w in self.weights]
        self.biases = [self._put(b) for b in self.biases]
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the parameters as NumPy arrays and the device by name (not its module)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("xp", "weights", "biases", "_work")}
        state["weights"], state["biases"] = (self._to_host(self.weights), self._to_host(self.biases))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._work = {}
        self.xp = backend.resolve(self.device)
        self.weights = [self._put(w) for w in self.weights]
        self.biases = [self._put(b) for b in self.biases]

    def _to_host(self, arrays: list[Any]) -> list[np.ndarray]:
        """Host copies of device arrays, in one transfer."""
        if not arrays:
            return []
        flat = backend.to_numpy(self.xp.concatenate([a.ravel() for a in arrays]))
        return [part.reshape(a.shape) for a, part in zip(arrays, np.split(flat, np.cumsum([a.size for a in arrays])[:-1]))]

    def _config(self) -> dict[str, np.ndarray]:
        """What defines the network, for its files."""
        return {
            "sizes": np.array(self.sizes, dtype=np.int64),
            "activation": np.array(self.activation),
            "output_activation": np.array(self.output_activation),
            "cost": np.array(self.cost_name),
            "init": np.array(self.init),
            "dtype": np.array(str(self.dtype)),
            "seed": np.array(self.seed, dtype=np.int64),
        }

    def _arrays(self, extra: list[Any] = ()) -> dict[str, np.ndarray]:
        """The parameters (and ``extra`` device arrays as v0, v1, ...) as host arrays, in one transfer."""
        L = len(self.weights)
        names = [f"w{l}" for l in range(L)] + [f"b{l}" for l in range(L)] + [f"v{i}" for i in range(len(extra))]
        return dict(zip(names, self._to_host(self._params + list(extra))))

    def save(self, path: str | os.PathLike) -> None:
        """Write the network to one versioned ``.npz`` file, atomically: a temporary file in
        the same directory, flushed to disk, then renamed over ``path``. A failed save leaves
        any previous file at ``path`` as it was."""
        files.write(path, *MODEL, {**self._config(), **self._arrays()})

    def _checkpoint(self, path, epoch: int, run: dict[str, Any], velocities: list[Any], history: History) -> None:
        arrays = {**self._config(), **self._arrays(velocities), "epoch": np.array(epoch),
                  "epochs_trained": np.array(self._epochs_trained)}
        arrays.update({f"run_{k}": np.array(v) for k, v in run.items()})
        arrays.update({f"history_{k}": np.array(v, dtype=np.float64) for k, v in vars(history).items()})
        files.write(path, *CHECKPOINT, arrays)

    def _resume(self, path, run: dict[str, Any], velocities: list[Any]) -> tuple[History, int]:
        """Load a checkpoint into this network and ``velocities``; returns its history and epoch."""
        data = files.read(path, *CHECKPOINT, what="xpbp checkpoint")
        try:
            for key, value in self._config().items():
                if key != "seed" and not np.array_equal(data[key], value):
                    raise ValueError(f"{path} is a checkpoint of another network ({key} {data[key]} there, {value} here)")
            for key, value in run.items():
                if data[f"run_{key}"].item() != value:
                    raise ValueError(f"{path} was written by a run with {key}={data[f'run_{key}'].item()}, this one has {key}={value}")
            if any(data[f"v{i}"].shape != v.shape for i, v in enumerate(velocities)):
                raise ValueError(f"{path} holds velocities of other shapes")
            weights, biases = _parameters(data, self.sizes, path)
            self.weights, self.biases = [self._put(w) for w in weights], [self._put(b) for b in biases]
            _assign(velocities, [self._put(data[f"v{i}"]) for i in range(len(velocities))])
            self.seed, self._epochs_trained = int(data["seed"]), int(data["epochs_trained"])
            history = History(**{k: data[f"history_{k}"].tolist() for k in vars(History())})
            return history, int(data["epoch"])
        except KeyError as e:
            raise ValueError(f"{path} is a damaged xpbp checkpoint: {e.args[0]!r} is missing") from None


def _eta(run: dict[str, Any], epoch: int) -> float:
    """The learning rate of ``epoch`` (1-based) under the run's schedule."""
    return run["eta"] / (1.0 + run["eta_decay"] * (epoch - 1))


def _carve(xp: Any, shapes: list[tuple[int, ...]], dtype: np.dtype) -> tuple[Any, list[Any]]:
    """A new 1-D buffer of zeros, and views of it, one after another, with ``shapes``."""
    flat = xp.zeros(sum(math.prod(shape) for shape in shapes), dtype=dtype)
    views, k = [], 0
    for shape in shapes:
        views.append(flat[k : k + math.prod(shape)].reshape(shape))
        k += math.prod(shape)
    return flat, views


def _state(theta: Any, velocity: Any) -> list[Any]:
    """What an update changes: θ, and the velocities when there is momentum."""
    return [theta] if velocity is None else [theta, velocity]


def _assign(targets: list[Any], values: list[Any]) -> None:
    """Copy ``values`` into the arrays ``targets``, in place."""
    for t, v in zip(targets, values):
        t[...] = v


def _parameters(data: dict[str, np.ndarray], sizes: list[int], path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The weights and biases in a file's arrays, checked against ``sizes``."""
    weights, biases = [], []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for name, want, out in ((f"w{l}", (n_out, n_in), weights), (f"b{l}", (n_out, 1), biases)):
            if name not in data:
                raise ValueError(f"{path} is damaged: {name!r} is missing")
            if data[name].shape != want:
                raise ValueError(f"{path} is damaged: {name} has shape {data[name].shape}, expected {want}")
            if data[name].dtype.kind != "f" or not np.isfinite(data[name]).all():
                raise ValueError(f"{path} is damaged: {name} is not finite floating-point data")
            out.append(data[name])
    return weights, biases


def load(path: str | os.PathLike, device: str = "auto") -> Network:
    """Read a network written by :meth:`Network.save`, onto ``device``. Never unpickles;
    raises ``ValueError`` for a file that is not a valid xpbp model."""
    device = backend.canonical(device)  # the caller's mistake, not the file's
    data = files.read(path, *MODEL, what="xpbp model file")
    net = Network.__new__(Network)  # configured from the file, without drawing parameters it would replace
    try:
        net._configure(
            [int(n) for n in data["sizes"]],
            activation=str(data["activation"]),
            output_activation=str(data["output_activation"]),
            cost=str(data["cost"]),
            init=str(data["init"]),
            dtype=str(data["dtype"]),
            device=device,
            seed=int(data["seed"]),
        )
    except KeyError as e:
        raise ValueError(f"{path} is a damaged xpbp model file: {e.args[0]!r} is missing") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} is a damaged xpbp model file: {e}") from None
    weights, biases = _parameters(data, net.sizes, path)
    net.weights, net.biases = [net._put(w) for w in weights], [net._put(b) for b in biases]
    return net
