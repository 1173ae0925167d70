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
import os
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from . import activations as _activations
from . import backend
from . import costs as _costs

__all__ = ["History", "Network", "load"]

log = logging.getLogger(__name__)

FORMAT = "xpbp-model"
VERSION = 1
_CHUNK = 8192  # examples per forward pass in predict/evaluate, to bound device memory


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
    """``a`` as an array (host data becomes NumPy), refusing what is not real numbers
    before it reaches a device."""
    if not hasattr(a, "dtype") or not hasattr(a, "ndim"):
        a = np.asarray(a)
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
        if self._cost.requires and self._output.name != self._cost.requires:
            raise ValueError(f"cost={cost!r} requires output_activation={self._cost.requires!r}, got {output_activation!r}")
        if self._output.name == "softmax" and cost != "log_likelihood":
            raise ValueError(f"output_activation='softmax' pairs only with cost='log_likelihood', got cost={cost!r}")
        if init not in ("scaled", "large"):
            raise ValueError(f"init must be 'scaled' or 'large', got {init!r}")
        if str(dtype) not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.activation, self.output_activation, self.cost_name, self.init = activation, output_activation, cost, init
        self.dtype = np.dtype(str(dtype))
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        self.device = backend.canonical(device)
        self.xp = backend.resolve(self.device)
        self._epochs_trained = 0

        # Drawn on the host in float64, so a seed gives the same network on every device and dtype.
        rng = np.random.default_rng(self.seed)
        scale = [1.0 / np.sqrt(n) if init == "scaled" else 1.0 for n in self.sizes[:-1]]
        self.weights = [self._put(rng.standard_normal((n, k)) * s) for k, n, s in zip(self.sizes[:-1], self.sizes[1:], scale)]
        self.biases = [self._put(rng.standard_normal((n, 1))) for n in self.sizes[1:]]

    def __repr__(self) -> str:
        return (
            f"Network({self.sizes}, activation={self.activation!r}, output_activation={self.output_activation!r}, "
            f"cost={self.cost_name!r}, dtype={str(self.dtype)!r}, device={self.device!r})"
        )

    @property
    def _sigmas(self) -> list[_activations.Activation]:
        """σ of each layer after the input."""
        return [self._hidden] * (len(self.sizes) - 2) + [self._output]

    # ------------------------------------------------------------------ data at the boundary

    def _put(self, a: Any) -> Any:
        """``a`` on the network's device in its dtype (no copy when already so)."""
        return backend.to_device(a, self.device).astype(self.dtype, copy=False)

    def _matrix(self, a: Any, name: str, width: int, *, columns: bool, finite: bool = True) -> Any:
        """Validate a 2-D input and bring it to the device. ``columns``: examples are columns
        (shape ``(width, m)``), else rows (shape ``(N, width)``)."""
        a = _real_array(a, name)
        want = f"({width}, m)" if columns else f"(n_examples, {width})"
        if a.ndim != 2 or a.shape[0 if columns else 1] != width:
            raise ValueError(f"{name} must have shape {want}, got shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"{name} is empty: shape {a.shape}")
        if finite and not _all_finite(a):
            raise ValueError(f"{name} contains NaN or Inf")
        return backend.to_device(a, self.device).astype(self.dtype, copy=False)

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
            a = sigma.fn(w @ a + b)  # a = σ(w a + b)
        return a

    def backprop(self, x: Any, y: Any) -> tuple[list[Any], list[Any]]:
        """``(nabla_b, nabla_w)``: the gradient of the mean cost C = (1/m) Σₓ Cₓ over the m
        columns of ``x`` ``(sizes[0], m)`` and ``y`` ``(sizes[-1], m)``, shaped like
        ``biases`` and ``weights``, on the device."""
        nabla_b, nabla_w, _ = self._backprop(*self._pair(x, y))
        return nabla_b, nabla_w

    def _backprop(self, x: Any, y: Any) -> tuple[list[Any], list[Any], Any]:
        """BP1–BP4 over a mini-batch; also returns the output activations aᴸ."""
        # Feedforward, storing every z and every activation, layer by layer.
        activation, activations, zs = x, [x], []
        for w, b, sigma in zip(self.weights, self.biases, self._sigmas):
            z = w @ activation + b
            activation = sigma.fn(z)
            zs.append(z)
            activations.append(activation)
        L = len(self.weights)
        nabla_b, nabla_w = [None] * L, [None] * L
        # BP1, with the 1/m of the mean cost folded in once; BP2 carries it to every layer.
        delta = self._cost.delta(zs[-1], activations[-1], y, self._output) * (1.0 / x.shape[1])
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                delta = (self.weights[l + 1].T @ delta) * self._sigmas[l].prime(zs[l])  # BP2
            nabla_b[l] = delta.sum(axis=1, keepdims=True)  # BP3, summed over the mini-batch
            nabla_w[l] = delta @ activations[l].T  # BP4, summed over the mini-batch by the product
        return nabla_b, nabla_w, activations[-1]

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
    ) -> History:
        """Mini-batch stochastic gradient descent with L2 weight decay and momentum.

        ``X`` is ``(N, sizes[0])`` with examples as rows; ``y`` is integer labels ``(N,)``
        or float targets ``(N, sizes[-1])``. For each mini-batch of m examples:
        v ← μv − η(∇C + (λ/N)w), w ← w + v, and the same for b without the λ term;
        with μ = 0 this is Nielsen's update. The data is moved to the device once;
        each epoch draws a seeded permutation on the device and takes contiguous slices.
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
        lmbda = _real(lmbda, "lmbda", 0.0)
        mu = _real(momentum, "momentum", 0.0, 1.0, high_open=True)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            Xv = self._matrix(validation_data[0], "validation_data[0]", self.sizes[0], columns=False)
            Yv, labels_v = self._targets(validation_data[1], Xv.shape[0], "validation_data[1]")
        if progress is None:
            progress = sys.stderr.isatty()

        decay = lmbda / n
        velocities = [[xp.zeros_like(p) for p in ps] for ps in (self.weights, self.biases)] if mu else None
        history = History()
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            if shuffle:
                seed = np.random.SeedSequence([self.seed, self._epochs_trained]).generate_state(1)[0]
                perm = xp.random.RandomState(int(seed)).permutation(n)
                Xe, Ye = X[perm], Y[perm]  # one gather per epoch; mini-batches are then slices
            else:
                Xe, Ye = X, Y
            total = xp.zeros((), dtype=self.dtype)
            with tqdm(total=n, desc=f"epoch {epoch}/{epochs}", unit="ex", unit_scale=True, leave=False, disable=not progress) as bar:
                for k in range(0, n, batch_size):
                    x, y = Xe[k : k + batch_size].T, Ye[k : k + batch_size].T
                    total += self._step(x, y, eta, decay, mu, velocities)
                    bar.update(x.shape[1])
            self._epochs_trained += 1
            stats = [total / n]
            if lmbda:
                stats.append(0.5 * decay * sum((w * w).sum() for w in self.weights))
            if validation_data is not None:
                stats.extend(self._totals(Xv, Yv, labels_v))
            values = backend.to_numpy(xp.stack(stats)).tolist()  # the epoch's one host synchronisation
            history.train_cost.append(values[0] + (values[1] if lmbda else 0.0))
            if validation_data is not None:
                history.val_cost.append(values[-2] / Xv.shape[0])
                history.val_accuracy.append(values[-1] / Xv.shape[0])
            history.seconds.append(time.perf_counter() - start)
            line = f"epoch {epoch}/{epochs}: cost {history.train_cost[-1]:.4f}"
            if validation_data is not None:
                line += f", validation cost {history.val_cost[-1]:.4f}, accuracy {history.val_accuracy[-1]:.2%}"
            log.info("%s (%.2f s, %.0f examples/s)", line, history.seconds[-1], n / history.seconds[-1])
        return history

    def _step(self, x: Any, y: Any, eta: float, decay: float, mu: float, velocities: list[list[Any]] | None) -> Any:
        """One gradient-descent update on a mini-batch; returns the batch's summed cost (on the device)."""
        nabla_b, nabla_w, a = self._backprop(x, y)
        if decay:
            for w, nw in zip(self.weights, nabla_w):
                nw += decay * w  # ∇C + (λ/N) w
        for l, (grads, params) in enumerate(((nabla_w, self.weights), (nabla_b, self.biases))):
            for i, (p, g) in enumerate(zip(params, grads)):
                if velocities is None:
                    p -= eta * g
                else:
                    v = velocities[l][i]
                    v *= mu
                    v -= eta * g
                    p += v
        return self._cost.fn(a, y).sum()

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
        self.weights = [self._put(w) for w in self.weights]
        self.biases = [self._put(b) for b in self.biases]
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write the network to one versioned ``.npz`` file, atomically: a temporary file in
        the same directory, flushed to disk, then renamed over ``path``. A failed save leaves
        any previous file at ``path`` as it was."""
        path = Path(path)
        arrays = {
            "format": np.array(FORMAT),
            "version": np.array(VERSION),
            "sizes": np.array(self.sizes, dtype=np.int64),
            "activation": np.array(self.activation),
            "output_activation": np.array(self.output_activation),
            "cost": np.array(self.cost_name),
            "init": np.array(self.init),
            "dtype": np.array(str(self.dtype)),
            "seed": np.array(self.seed, dtype=np.int64),
        }
        params = self.weights + self.biases
        flat = backend.to_numpy(self.xp.concatenate([p.ravel() for p in params]))  # one transfer for all
        names = [f"w{l}" for l in range(len(self.weights))] + [f"b{l}" for l in range(len(self.biases))]
        for name, p, part in zip(names, params, np.split(flat, np.cumsum([p.size for p in params])[:-1])):
            arrays[name] = part.reshape(p.shape)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise


def load(path: str | os.PathLike, device: str = "auto") -> Network:
    """Read a network written by :meth:`Network.save`, onto ``device``. Never unpickles;
    raises ``ValueError`` for a file that is not a valid xpbp model."""
    path = Path(path)
    with open(path, "rb") as fh:  # our own handle, closed even when np.load fails half-way
        try:
            with np.load(fh, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is not a valid xpbp model file (not a readable .npz: {e})") from None
    if str(data.get("format", "")) != FORMAT:
        raise ValueError(f"{path} is not an xpbp model file (no format {FORMAT!r} marker)")
    version = str(data.get("version", "missing"))
    if version != str(VERSION):
        raise ValueError(f"{path} has model format version {version}; this xpbp reads version {VERSION}")
    try:
        sizes = [int(n) for n in data["sizes"]]
        net = Network(
            sizes,
            activation=str(data["activation"]),
            output_activation=str(data["output_activation"]),
            cost=str(data["cost"]),
            init=str(data["init"]),
            dtype=str(data["dtype"]),
            device=device,
            seed=int(data["seed"]),
        )
        weights = [data[f"w{l}"] for l in range(len(sizes) - 1)]
        biases = [data[f"b{l}"] for l in range(len(sizes) - 1)]
    except KeyError as e:
        raise ValueError(f"{path} is a damaged xpbp model file: {e.args[0]!r} is missing") from None
    for name, got, want in [(f"w{l}", w.shape, v.shape) for l, (w, v) in enumerate(zip(weights, net.weights))] + [
        (f"b{l}", b.shape, v.shape) for l, (b, v) in enumerate(zip(biases, net.biases))
    ]:
        if got != want:
            raise ValueError(f"{path} is a damaged xpbp model file: {name} has shape {got}, expected {want}")
    net.weights, net.biases = [net._put(w) for w in weights], [net._put(b) for b in biases]
    return net
