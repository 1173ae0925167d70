"""A fully-connected network trained by backpropagation, equations BP1–BP4.

Nielsen, *Neural Networks and Deep Learning*, ch. 2, vectorized over a mini-batch:
x is a matrix whose m columns are examples, so every z, a and δ below is a matrix
with m columns and each equation is one matrix product or elementwise operation.

    z  = w a + b                              (feedforward)
    δᴸ = ∇ₐC ⊙ σ′(zᴸ)                        (BP1)
    δˡ = ((wˡ⁺¹)ᵀ δˡ⁺¹) ⊙ σ′(zˡ)             (BP2)
    ∂C/∂bˡ = δˡ, summed over the columns     (BP3)
    ∂C/∂wˡ = δˡ (aˡ⁻¹)ᵀ                      (BP4)

:meth:`Network.backprop` below is those four lines, as the book writes them. Training
runs the same equations in :mod:`xpbp.workspace`, written into buffers kept from step
to step; the loop around them is :mod:`xpbp.training` (for a run described in
:mod:`xpbp.runs`), the files :mod:`xpbp.formats`.

The same code runs on NumPy and CuPy: ``self.xp`` is the array module of the
network's device, every method runs with that device current, and data crosses the
host/device boundary only at the public methods' edges.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from . import activations as _activations
from . import backend, formats, runs, training, validation
from . import costs as _costs
from .checkpoints import Checkpoints
from .runs import DeviceMemoryError, DivergenceError, History
from .workspace import Layout, Parameters, Workspace

__all__ = ["DeviceMemoryError", "DivergenceError", "History", "Network", "load"]

_CHUNK = 8192  # examples per forward pass in predict/evaluate, to bound device memory
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _on_device(method: _Method) -> _Method:
    """Run ``method`` with the network's device current (CuPy allocates, launches and
    draws on the current GPU) and with any w or b replaced since taken into θ."""

    @functools.wraps(method)
    def call(self: Network, *args: Any, **kwargs: Any) -> Any:
        with backend.using(self.device):
            self._sync()
            return method(self, *args, **kwargs)

    return call  # type: ignore[return-value]


class Network:
    """A fully-connected feedforward network.

    ``net.weights[l]`` (shape ``(sizes[l+1], sizes[l])``) and ``net.biases[l]`` (``(sizes[l+1], 1)``)
    are arrays on the device, views of one flat buffer that ``fit`` updates in place, so a
    reference to one keeps following the training. An array put in their place
    (``net.weights[0] = w``) is copied into that buffer by the next method call, and the
    list holds the buffer's view again: the array put there is not trained itself.

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
        self._configure(
            sizes,
            activation=activation,
            output_activation=output_activation,
            cost=cost,
            init=init,
            dtype=dtype,
            device=device,
            seed=seed,
        )
        # Drawn on the host in float64, so a seed gives the same network on every device and dtype.
        rng = np.random.default_rng(self.seed)
        scale = [1.0 / np.sqrt(n) if init == "scaled" else 1.0 for n in self.sizes[:-1]]
        weights = [rng.standard_normal((n, k)) * s for k, n, s in zip(self.sizes[:-1], self.sizes[1:], scale)]
        biases = [rng.standard_normal((n, 1)) for n in self.sizes[1:]]
        self._place(np.concatenate([p.ravel() for p in weights + biases]))

    def _configure(
        self,
        sizes: Sequence[int],
        *,
        activation: str,
        output_activation: str | None,
        cost: str,
        init: str,
        dtype: Any,
        device: str,
        seed: int | None,
    ) -> None:
        """Everything but the parameters, validated (``load`` reads those from its file)."""
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
            raise ValueError(f"sizes must be a list of at least two layer widths, e.g. [784, 30, 10], got {sizes!r}")
        self.sizes = [validation.positive_int(n, f"sizes[{i}]") for i, n in enumerate(sizes)]
        output_activation = activation if output_activation is None else output_activation
        self._hidden = _activations.hidden(activation)
        self._output = _activations.get(output_activation, argument="output_activation")
        self._cost = _costs.get(cost, output=self._output)
        self._sigmas = [self._hidden] * (len(self.sizes) - 2) + [self._output]  # σ of each layer after the input
        if init not in ("scaled", "large"):
            raise ValueError(f"init must be 'scaled' or 'large', got {init!r}")
        self.dtype, seed = validation.dtype(dtype), validation.seed(seed)
        self.activation, self.output_activation, self.cost_name, self.init = activation, output_activation, cost, init
        self.seed = int(np.random.SeedSequence().entropy) % 2**63 if seed is None else int(seed)  # type: ignore[arg-type]
        self._on(backend.canonical(device))
        self._layout = Layout(tuple(self.sizes))
        self._epochs_trained = 0
        self.trained_on: str | None = None  # "<data set>:<split>" when known (xpbp train sets it); saved with the model

    def _on(self, device: str) -> None:
        """Make ``device`` (canonical) the network's, for what it makes and checks from now on."""
        self.device, self.xp = device, backend.resolve(device)
        self._inputs = validation.Inputs(tuple(self.sizes), self.dtype, device)

    def __repr__(self) -> str:
        return (
            f"Network({self.sizes}, activation={self.activation!r}, output_activation={self.output_activation!r}, "
            f"cost={self.cost_name!r}, dtype={str(self.dtype)!r}, device={self.device!r})"
        )

    def _place(self, flat: Any) -> None:
        """θ on the device from ``flat`` (every w, then every b, raveled), and every w and b a view of it."""
        self._params = Parameters(self._layout, flat, self.dtype, self.device)
        self.weights, self.biases = self._layout.split(self._params.views)
        self._work: Workspace | None = None

    def _sync(self) -> Any:
        """θ, after taking in any w or b that was replaced since by another array."""
        if self._params.take(list(self.weights) + list(self.biases)):
            self.weights, self.biases = self._layout.split(self._params.views)
        return self._params.theta

    def _workspace(self, batch_sizes: set[int]) -> Workspace:
        """The training step's buffers, kept from fit to fit for the batch sizes of the last run only."""
        if self._work is None:
            self._work = Workspace(self.sizes, self._sigmas, self._cost, self.xp, self.dtype)
        self._work.keep(batch_sizes)
        return self._work

    def _config(self) -> formats.Config:
        return formats.Config(
            tuple(self.sizes), self.activation, self.output_activation, self.cost_name, self.init, str(self.dtype), self.seed
        )

    @_on_device
    def feedforward(self, a: Any) -> Any:
        """Output activations ``(sizes[-1], m)`` on the device for inputs ``a`` ``(sizes[0], m)``."""
        return self._feedforward(self._inputs.columns(a, "a", self.sizes[0]))

    def _feedforward(self, a: Any) -> Any:
        for w, b, sigma in zip(self.weights, self.biases, self._sigmas):
            z = w @ a
            z += b  # z = w a + b
            a = sigma.fn(z, out=z)  # a = σ(z), over z
        return a

    @_on_device
    def backprop(self, x: Any, y: Any) -> tuple[list[Any], list[Any]]:
        """``(nabla_b, nabla_w)``: the gradient of the mean cost C = (1/m) Σₓ Cₓ over the m
        columns of ``x`` ``(sizes[0], m)`` and ``y`` ``(sizes[-1], m)``, shaped like
        ``biases`` and ``weights``, on the device."""
        x, y = self._inputs.pair(x, y)
        m, L = x.shape[1], len(self.weights)
        # Feedforward, storing every z and every activation, layer by layer.
        activation, activations, zs = x, [x], []
        for w, b, sigma in zip(self.weights, self.biases, self._sigmas):
            z = w @ activation + b
            zs.append(z)
            activation = sigma.fn(z)
            activations.append(activation)
        nabla_b, nabla_w = [None] * L, [None] * L
        # δᴸ of the mean cost, 1/m of the summed cost's; BP2 carries the 1/m to every layer.
        delta = self._cost.delta(zs[-1], activations[-1], y, self._output) * (1 / m)  # BP1
        nabla_b[-1] = delta.sum(axis=1, keepdims=True)  # BP3
        nabla_w[-1] = delta @ activations[-2].T  # BP4
        for l in range(2, L + 1):
            delta = (self.weights[-l + 1].T @ delta) * self._sigmas[-l].prime(zs[-l], activations[-l])  # BP2
            nabla_b[-l] = delta.sum(axis=1, keepdims=True)  # BP3
            nabla_w[-l] = delta @ activations[-l - 1].T  # BP4
        return nabla_b, nabla_w

    @_on_device
    def cost(self, x: Any, y: Any) -> float:
        """The mean cost (1/m) Σₓ Cₓ over the m columns of ``x`` and ``y``, as a float."""
        x, y = self._inputs.pair(x, y)
        return float(backend.to_numpy(self._cost.fn(self._feedforward(x), y).mean()))

    @_on_device
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 30,
        batch_size: int | None = None,
        eta: float | None = None,
        lmbda: float = 0.0,
        momentum: float = 0.0,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        progress: bool | None = None,
        eta_decay: float = 0.0,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
        threads: int | None = None,
        comm: Any = None,
    ) -> History:
        """Train by mini-batch stochastic gradient descent: for each mini-batch, with ∇C from BP1–BP4,
        v ← μv − η(∇C + (λ/N)w), w ← w + v, and b likewise without the λ term (μ = 0 is Nielsen's update).
        Returns the run's :class:`History`; raises :class:`DivergenceError` when a cost or a parameter
        becomes NaN or Inf, :class:`DeviceMemoryError` when the device's memory runs out.

        Parameters
        ----------
        X, y : examples as rows, ``(N, sizes[0])``; integer labels ``(N,)`` or targets ``(N, sizes[-1])``.
        epochs, batch_size, eta : passes over the data, the mini-batch size m and the learning rate η; by
            default Nielsen's 30, 10 (N when N < 10) and η of the cost (3.0 quadratic, 0.5 cross-entropy, 0.1 log-likelihood).
        lmbda, momentum : the L2 term λ ≥ 0 and the momentum μ in [0, 1).
        validation_data : ``(X_val, y_val)``, whose cost and accuracy each epoch records.
        shuffle, progress : a new order each epoch; a progress bar (None: when stderr is a terminal).
        eta_decay : the schedule η/(1 + eta_decay·(e − 1)) in epoch e (Nielsen, ch. 3); 0 keeps η.
        checkpoint, checkpoint_every, resume : a file rewritten every ``checkpoint_every`` epochs and after the last,
            and whether to go on from it (:mod:`xpbp.checkpoints`), ending where an unbroken run would (on the CPU, bit for bit).
        threads : BLAS threads on the CPU; None picks them (:func:`xpbp.threads.threads_for`).
        comm : an mpi4py communicator (:mod:`xpbp.distributed`): every rank calls ``fit`` alike; m is global.
        """
        plan = runs.Plan.checked(
            self,
            X,
            y,
            validation_data,
            epochs=epochs,
            batch_size=batch_size,
            eta=eta,
            eta_decay=eta_decay,
            lmbda=lmbda,
            momentum=momentum,
            shuffle=shuffle,
            progress=progress,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            resume=resume,
            threads=threads,
            comm=comm,
        )
        saving = Checkpoints(checkpoint, plan.checkpoint_every, resume) if checkpoint is not None else None
        return training.Trainer(self, plan.run, plan.data, plan.execution).train(saving)

    def _totals(self, X: Any, Y: Any, labels: Any) -> list[Any]:
        """Summed cost, number of correct predictions, and number of examples whose outputs
        are not finite, over rows of X, on the device."""
        cost, correct, bad = (self.xp.zeros((), dtype=self.dtype) for _ in range(3))
        for k in range(0, X.shape[0], _CHUNK):
            a = self._feedforward(X[k : k + _CHUNK].T)
            cost = cost + self._cost.fn(a, Y[k : k + _CHUNK].T).sum()
            correct = correct + (a.argmax(axis=0) == labels[k : k + _CHUNK]).sum()
            bad = bad + (~self.xp.isfinite(a)).any(axis=0).sum()
        return [cost, correct, bad]

    @_on_device
    @np.errstate(over="ignore", invalid="ignore")  # outputs that overflow are reported below, by count
    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (the most active output neuron) for rows of ``X``, as NumPy ints.
        Raises ``ValueError`` when an output is NaN or Inf, so that no label is a guess."""
        X, xp = self._inputs.rows(X, "X"), self.xp
        parts, bad = [], 0
        for k in range(0, X.shape[0], _CHUNK):
            a = self._feedforward(X[k : k + _CHUNK].T)
            parts.append(a.argmax(axis=0))
            bad = bad + (~xp.isfinite(a)).any(axis=0).sum()
        host = backend.to_numpy(xp.concatenate(parts + [xp.reshape(bad, (1,)).astype(parts[0].dtype)]))
        _finite_outputs(int(host[-1]), X.shape[0])
        return host[:-1]

    @_on_device
    @np.errstate(over="ignore", invalid="ignore")
    def evaluate(self, X: Any, y: Any) -> float:
        """Accuracy, the fraction of rows of ``X`` whose predicted label matches ``y``.
        Raises ``ValueError`` when an output is NaN or Inf."""
        X = self._inputs.rows(X, "X")
        Y, labels = self._inputs.targets(y, X.shape[0], "y")
        _, correct, bad = backend.to_numpy(self.xp.stack(self._totals(X, Y, labels))).tolist()
        _finite_outputs(int(bad), X.shape[0])
        return correct / X.shape[0]

    def to(self, device: str) -> Network:
        """Move the parameters to ``device`` in place; returns the network."""
        device = backend.canonical(device)
        with backend.using(self.device):
            theta = self._sync()
        self._on(device)
        self._place(theta)
        return self

    def _host_parameters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Host copies of the weights and of the biases, in one transfer."""
        with backend.using(self.device):
            self._sync()
            return self._layout.split(self._params.host())

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the parameters as NumPy arrays and the device by name (not its module)."""
        skip = ("xp", "weights", "biases", "_params", "_work", "_layout", "_inputs")
        state = {k: v for k, v in self.__dict__.items() if k not in skip}
        state["weights"], state["biases"] = self._host_parameters()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        params = state.pop("weights") + state.pop("biases")
        state.pop("_work", None)  # pickles of xpbp 0.1 carry an empty one, and no trained_on
        state.setdefault("trained_on", None)
        self.__dict__.update(state)
        self._on(backend.usable(self.device, "a network pickled on"))
        self._layout = Layout(tuple(self.sizes))
        self._place(np.concatenate([np.asarray(p).ravel() for p in params]))

    def save(self, path: str | os.PathLike) -> None:
        """Write the network to one versioned ``.npz`` file, atomically: a temporary file in
        the same directory, flushed to disk, then renamed over ``path``. A failed save leaves
        any previous file at ``path`` as it was."""
        formats.write_model(path, formats.ModelFile(self._config(), *self._host_parameters(), self.trained_on))


def _finite_outputs(bad: int, n: int) -> None:
    if bad:
        raise ValueError(
            f"the network's outputs for {bad} of the {n} rows of X are NaN or Inf, so they have no label: "
            "finite but extreme inputs overflow its weighted sums; scale the inputs"
        )


def load(path: str | os.PathLike, device: str = "auto") -> Network:
    """Read a network written by :meth:`Network.save`, onto ``device``. Never unpickles;
    raises ``ValueError`` for a file that is not a valid xpbp model."""
    device = backend.canonical(device)  # the caller's mistake, not the file's
    model = formats.read_model(path)
    net = Network.__new__(Network)  # configured from the file, without drawing parameters it would replace
    config = model.config
    try:
        net._configure(
            list(config.sizes),
            activation=config.activation,
            output_activation=config.output_activation,
            cost=config.cost,
            init=config.init,
            dtype=config.dtype,
            device=device,
            seed=config.seed,
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} is a damaged xpbp model file: {e}") from None
    net._place(np.concatenate([p.ravel() for p in model.weights + model.biases]))
    net.trained_on = model.trained_on
    return net
