"""A fully-connected network trained by backpropagation, equations BP1–BP4.

Nielsen, *Neural Networks and Deep Learning*, ch. 2, vectorized over a mini-batch:
x is a matrix whose m columns are examples, so every z, a and δ below is a matrix
with m columns and each equation is one matrix product or elementwise operation.

    z  = w a + b                              (feedforward)
    δᴸ = ∇ₐC ⊙ σ′(zᴸ)                        (BP1)
    δˡ = ((wˡ⁺¹)ᵀ δˡ⁺¹) ⊙ σ′(zˡ)             (BP2)
    ∂C/∂bˡ = δˡ, summed over the columns     (BP3)
    ∂C/∂wˡ = δˡ (aˡ⁻¹)ᵀ                      (BP4)

`Network.backprop` below is those four lines, as the book writes them. Training
runs the same equations in `xpbp.workspace`, written into buffers kept from step
to step; the loop around them is `xpbp.training` (for a run described in
`xpbp.runs`, with an optimizer from `xpbp.optimizers`), the files
`xpbp.formats`. What the outputs mean — classes or quantities — is the network's
task (`xpbp.tasks`).

The same code runs on NumPy and CuPy: `self.xp` is the array module of the
network's device, every method runs with that device current, and data crosses the
host/device boundary only at the public methods' edges.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from . import activations as _activations
from . import backend, formats, optimizers, runs, tasks, training, validation
from . import costs as _costs
from . import scaling as _scaling
from .checkpoints import Checkpoints
from .model import CHUNK, Config, Model
from .runs import DeviceMemoryError, DivergenceError, History
from .workspace import Layout, Parameters, Workspace

__all__ = ["DeviceMemoryError", "DivergenceError", "History", "Network", "load"]

_Method = TypeVar("_Method", bound=Callable[..., Any])
_WIDEST = 2**31  # neurons in a layer (what the model files allow)


def _on_device(method: _Method) -> _Method:
    """Run `method` with the network's device current (CuPy allocates, launches and
    draws on the current GPU) and with any w or b replaced since taken into θ."""

    @functools.wraps(method)
    def call(self: Network, *args: Any, **kwargs: Any) -> Any:
        with backend.using(self.device):
            self._sync()
            return method(self, *args, **kwargs)

    return call  # type: ignore[return-value]


def _alone(method: _Method) -> _Method:
    """Refuse to start `method` while the network is training (`fit` in another thread):
    the two would share its parameters and work buffers."""

    @functools.wraps(method)
    def call(self: Network, *args: Any, **kwargs: Any) -> Any:
        if not self._training.acquire(blocking=False):
            raise RuntimeError(
                "this network is already training (fit was called from another thread and has not returned): "
                "train one network per thread, e.g. copy.deepcopy(net) for each"
            )
        try:
            return method(self, *args, **kwargs)
        finally:
            self._training.release()

    return call  # type: ignore[return-value]


class Network:
    """A fully-connected feedforward network.

    `net.weights[l]` (shape `(sizes[l+1], sizes[l])`) and `net.biases[l]` (`(sizes[l+1], 1)`)
    are arrays on the device, views of one flat buffer that `fit` updates in place, so a
    reference to one keeps following the training. An array put in their place
    (`net.weights[0] = w`) is copied into that buffer by the next method call, and the
    list holds the buffer's view again: the array put there is not trained itself.

    Parameters
    ----------
    sizes
        layer widths, input first, e.g. `[784, 30, 10]`.
    activation
        σ of the hidden layers: `"sigmoid"`, `"tanh"`, `"relu"` or `"identity"`.
    output_activation
        σ of the output layer; defaults to `activation`; may be `"softmax"`.
    cost
        `"quadratic"`, `"cross_entropy"` (sigmoid output) or `"log_likelihood"` (softmax output).
    init
        `"scaled"` (w ~ N(0, 1/n_in), b ~ N(0, 1), Nielsen's network2) or `"large"` (all N(0, 1)).
    dtype
        `"float32"` or `"float64"`.
    device
        `"auto"`, `"cpu"`, `"cuda"` or `"cuda:N"`.
    seed
        seeds the initial weights and every epoch's shuffle; drawn at random when None
        (and kept in `net.seed`, so a run can be repeated).
    task
        `"classification"`, `"multilabel"`, `"regression"`, or None to infer it from the targets of the first
        `fit` (`xpbp.tasks.infer`); kept in `net.task` and in the model file. A classifier
        predicts labels (with one output neuron, 1 where it is at least 0.5) and is scored by its
        accuracy; a regression predicts the outputs and is scored by RMSE and R².

    Attributes
    ----------
    scaling
        an `xpbp.scaling.Scaling` (or None, the default) applied to the rows given to
        `fit`, `predict`, `predict_proba`, `outputs`, `metrics` and `evaluate`, and saved with
        the model: `net.scaling = xpbp.scaling.fit(X_train, "standard")`. The book's entry points
        (`feedforward`, `backprop`, `cost`) take their columns as they are.
    classes
        the label of each class index (a tuple of strings, or None): `net.classes[k]` is what
        the training data called class k, so that `predict`'s indices can be given back as labels;
        saved with the model. `xpbp train --data` sets it from the file.
    target_scaling
        a regression's `xpbp.scaling.Scaling` of its targets (or None): `fit`
        and `metrics` scale the targets they are given by it, `predict` undoes it on the outputs
        (`outputs` gives them as the network computes them), and `metrics`' RMSE is in the
        targets' own units; saved with the model.
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
        task: str | None = None,
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
            task=task,
        )
        self._place(self._drawn())

    def _drawn(self) -> np.ndarray:
        """θ drawn from the seed: w ~ N(0, 1/n_in) ("scaled", or N(0, 1)) and b ~ N(0, 1), every
        w then every b. Each is drawn on the host in float64 (so that a seed gives the same
        network on every device and dtype) and written into θ in its dtype one layer at a
        time, so that drawing holds θ and one layer's float64 values, no more."""
        rng = np.random.default_rng(self.seed)
        flat = np.empty(self._layout.size, dtype=self.dtype)
        L = len(self.sizes) - 1
        for l, (view, shape) in enumerate(zip(self._layout.views(flat), self._layout.shapes)):
            drawn = rng.standard_normal(shape)
            if l < L:  # w, of shape (n_out, n_in)
                drawn *= 1.0 / np.sqrt(shape[1]) if self.init == "scaled" else 1.0
            view[...] = drawn
        return flat

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
        task: str | None,
    ) -> None:
        """Everything but the parameters, validated (`load` reads those from its file)."""
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
            raise ValueError(f"sizes must be a list of at least two layer widths, e.g. [784, 30, 10], got {sizes!r}")
        self.sizes = [validation.positive_int(n, f"sizes[{i}]") for i, n in enumerate(sizes)]
        for i, n in enumerate(self.sizes):
            if n > _WIDEST:
                raise ValueError(f"sizes[{i}] is {n}, beyond the {_WIDEST:,} neurons a layer may have")
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
        self.task: str | None = None if task is None else tasks.get(task).name
        self._on(backend.canonical(device))
        self._layout = Layout(tuple(self.sizes))
        self._epochs_trained = 0
        self._training = threading.Lock()
        self.trained_on: str | None = None  # "<data set>:<split>" when known (xpbp train sets it); saved with the model
        self._scaling: _scaling.Scaling | None = None
        self._target_scaling: _scaling.Scaling | None = None
        self.classes: tuple[str, ...] | None = None

    @property
    def scaling(self) -> _scaling.Scaling | None:
        """The feature scaling applied to every row this network is given (None: none)."""
        return self._scaling

    @scaling.setter
    def scaling(self, value: _scaling.Scaling | None) -> None:
        if value is not None and (not isinstance(value, _scaling.Scaling) or value.offset.shape != (self.sizes[0],)):
            raise ValueError(
                f"scaling must be None or an xpbp.scaling.Scaling of {self.sizes[0]} columns (xpbp.scaling.fit(X, 'standard')), "
                f"got {value!r}"
            )
        self._scaling = value

    @property
    def target_scaling(self) -> _scaling.Scaling | None:
        """A regression's scaling of its targets (None: none)."""
        return self._target_scaling

    @target_scaling.setter
    def target_scaling(self, value: _scaling.Scaling | None) -> None:
        if value is not None and (not isinstance(value, _scaling.Scaling) or value.offset.shape != (self.sizes[-1],)):
            raise ValueError(
                f"target_scaling must be None or an xpbp.scaling.Scaling of {self.sizes[-1]} columns, one per output, "
                f"got {value!r}"
            )
        self._target_scaling = value

    def _targets(self, y: Any, name: str = "y") -> Any:
        """A regression's targets scaled by `target_scaling` (`y` itself when there is none)."""
        if self._target_scaling is None or y is None:
            return y
        Y = validation.real_array(y, name)
        return self._target_scaling.apply(Y.reshape(Y.shape[0], -1), self.dtype, self.device)

    def _rows(self, X: Any, name: str = "X") -> Any:
        """Rows of `X` on the device, checked, and scaled by `scaling` when there is one."""
        X = self._inputs.rows(X, name)
        return X if self._scaling is None else self._scaling.apply(X, self.dtype, self.device)

    def _on(self, device: str) -> None:
        """Make `device` (canonical) the network's, for what it makes and checks from now on."""
        self.device, self.xp = device, backend.resolve(device)
        self._model = Model(tuple(self.sizes), tuple(self._sigmas), self._cost, device, self.xp, self.dtype)
        self._inputs = self._model.inputs

    def __repr__(self) -> str:
        return (
            f"Network({self.sizes}, activation={self.activation!r}, output_activation={self.output_activation!r}, "
            f"cost={self.cost_name!r}, dtype={str(self.dtype)!r}, device={self.device!r})"
        )

    def _place(self, flat: Any) -> None:
        """θ on the device from `flat` (every w, then every b, raveled), and every w and b a view of it."""
        self._params = Parameters(self._layout, flat, self.dtype, self.device)
        self.weights, self.biases = self._layout.split(self._params.views)
        self._work: Workspace | None = None

    def _sync(self) -> Any:
        """θ, after taking in any w or b that was replaced since by another array."""
        if self._params.take(list(self.weights) + list(self.biases)):
            self.weights, self.biases = self._layout.split(self._params.views)
        return self._params.theta

    def _config(self) -> Config:
        return Config(
            tuple(self.sizes),
            self.activation,
            self.output_activation,
            self.cost_name,
            self.init,
            str(self.dtype),
            self.seed,
            self.task,
        )

    def _task(self, y: Any = None) -> tasks.Task:
        """The network's task; when it has none yet, the one its output layer and `y` suggest."""
        return tasks.get(self.task) if self.task is not None else tasks.infer(self.output_activation, self.sizes[-1], y)

    @_on_device
    def feedforward(self, a: Any) -> Any:
        """Output activations `(sizes[-1], m)` on the device for inputs `a` `(sizes[0], m)`."""
        return self._model.forward(self.weights, self.biases, self._inputs.columns(a, "a", self.sizes[0]))

    @_on_device
    def backprop(self, x: Any, y: Any) -> tuple[list[Any], list[Any]]:
        """`(nabla_b, nabla_w)`: the gradient of the mean cost C = (1/m) Σₓ Cₓ over the m
        columns of `x` `(sizes[0], m)` and `y` `(sizes[-1], m)`, shaped like
        `biases` and `weights`, on the device."""
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
        """The mean cost (1/m) Σₓ Cₓ over the m columns of `x` and `y`, as a float."""
        x, y = self._inputs.pair(x, y)
        return float(backend.to_numpy(self._cost.fn(self._model.forward(self.weights, self.biases, x), y).mean()))

    @_alone
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
        optimizer: str | optimizers.Optimizer | None = None,
        regularization: str = "l2",
        dropout: float = 0.0,
        validation_fraction: float | None = None,
        early_stopping: int | None = None,
        halve_eta: int | None = None,
        tol: float = 0.0,
        monitor: str | None = None,
        shift: int = 0,
        mirror: bool = False,
        image_shape: tuple[int, int] | None = None,
        sample_weight: Any = None,
        decay_over: str = "data",
    ) -> History:
        """Train by mini-batch gradient descent: for each mini-batch, ∇C from BP1–BP4 plus the
        regularisation term, then the optimizer's step; by default SGD with momentum μ,
        v ← μv − η(∇C + (λ/N)w), w ← w + v, and b likewise without the λ term (μ = 0 is
        Nielsen's update). Returns the run's `History`; raises `DivergenceError`
        when a cost or a parameter becomes NaN or Inf, `DeviceMemoryError` when the
        device's memory runs out. Every argument is checked before anything changes.

        Parameters
        ----------
        X, y
            examples as rows, `(N, sizes[0])`; class labels `(N,)` or targets `(N, sizes[-1])`
            (a regression's `(N,)` for one output); what they are sets `net.task` when it is None.
        epochs, batch_size, eta
            passes over the data, the mini-batch size m and the learning rate η; by
            default Nielsen's 30, 10 (N when N < 10) and η of the cost (3.0 quadratic, 0.5 cross-entropy,
            0.1 log-likelihood), or Adam's 0.001 with Adam.
        lmbda, regularization
            λ ≥ 0, and `"l2"` (weight decay, (λ/N)w in the gradient) or `"l1"`
            ((λ/N) sgn(w)); the biases are not regularised (`xpbp.regularization`).
        momentum, optimizer
            `"sgd"` (the default: heavy-ball momentum μ in [0, 1)), `"nesterov"`
            (Nesterov momentum μ > 0), `"adam"`, or an `xpbp.optimizers.Optimizer`, whose state
            goes on from one fit to the next (`xpbp.optimizers`).
        dropout
            the probability p in [0, 1) of dropping each hidden neuron for each example and step
            (inverted dropout: kept activations are scaled by 1/(1 − p), so predicting needs no change).
        validation_data, validation_fraction
            `(X_val, y_val)`, or a fraction of `X` to hold out
            for validation (stratified by class for a classifier, drawn from the seed); each epoch records
            their cost and the task's scores.
        early_stopping, halve_eta, tol, monitor
            stop when the `monitor` score (default `val_accuracy`
            for a classifier, `val_rmse` for a regression; or `val_cost`) has not improved by more than
            `tol` in `early_stopping` epochs, keeping the best epoch's parameters; halve η after
            `halve_eta` such epochs, stopping once it is 1/128 of η (Nielsen, ch. 3). Both need validation data.
        shift, mirror, image_shape
            expand the training data (Nielsen, ch. 3): each epoch, move each
            example, an image of `image_shape` (by default square), by up to `shift` pixels each way, and
            mirror it left to right half the time (`xpbp.expand`).
        sample_weight
            a weight ≥ 0 per training example: each mini-batch's gradient is the weighted
            mean of its examples' (Σ wₓ∇Cₓ / Σ wₓ), and the training cost the weighted mean.
        decay_over
            `"data"` (λ/N, Nielsen's) or `"batch"`: λ over each mini-batch's m (or total
            weight), scikit-learn's `alpha`, with its term in the training cost taken at each step.
        shuffle, progress
            a new order each epoch; a progress bar (None: when stderr is a terminal).
        eta_decay
            the schedule η/(1 + eta_decay·(e − 1)) in epoch e (Nielsen, ch. 3); 0 keeps η.
        checkpoint, checkpoint_every, resume
            a file rewritten every `checkpoint_every` epochs and after the last,
            and whether to go on from it (`xpbp.checkpoints`), ending where an unbroken run would (on the CPU, bit for bit).
        threads
            BLAS threads on the CPU; None picks them (`xpbp.threads.threads_for`).
        comm
            an mpi4py communicator (`xpbp.distributed`): every rank calls `fit` alike; m is global.
        """
        settings = dict(locals())
        del settings["self"], settings["X"], settings["y"], settings["validation_data"]
        trainer = self._trainer(X, y, validation_data, settings)
        scaled = self._scaling is not None or not isinstance(X, np.ndarray)
        given = trainer.plan.data.train.X if scaled else X  # unscaled host data is looked at on the host
        _scaling.check(given, backend.get_array_module(given))
        saving = Checkpoints(checkpoint, trainer.plan.checkpoint_every, resume) if checkpoint is not None else None
        self.task = trainer.task.name
        try:
            return trainer.train(saving)
        finally:
            self.seed, self._epochs_trained = trainer.seed, trainer.epochs_trained

    def _trainer(self, X: Any, y: Any, validation_data: Any, settings: dict[str, Any]) -> training.Trainer:
        if self._scaling is not None or self._target_scaling is not None:
            X, y = self._rows(X), self._targets(y)
            if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
                validation_data = (self._rows(validation_data[0], "validation_data[0]"), self._targets(validation_data[1]))
        units = None if self._target_scaling is None else self._target_scaling.scale
        plan = runs.Plan.checked(self._model, self._config(), X, y, validation_data, units=units, **settings)
        trainer = training.Trainer(plan, self._params, self._work, self.seed, self._epochs_trained)
        self._work = trainer.workspace  # the training step's buffers, kept from fit to fit
        return trainer

    @_on_device
    def trainer(self, X: Any, y: Any, **settings: Any) -> training.Trainer:
        """The `xpbp.training.Trainer` that `fit` would run with these arguments (those of
        `fit`, by name), checked and set up but not started: for tools that drive its steps
        themselves, such as `xpbp bench`. Use it with the network's device current
        (`xpbp.backend.using`); it updates the network's parameters in place."""
        defaults = {k: p.default for k, p in inspect.signature(Network.fit).parameters.items() if p.kind is p.KEYWORD_ONLY}
        unknown = sorted(set(settings) - set(defaults))
        if unknown:
            raise TypeError(f"trainer() got arguments fit does not take: {', '.join(unknown)}")
        merged = {**defaults, **settings}
        return self._trainer(X, y, merged.pop("validation_data"), merged)

    def _host_outputs(self, X: Any, task: tasks.Task) -> np.ndarray:
        """The task's predictions for rows of X, on the host in one transfer; `ValueError`
        when an output is NaN or Inf, so that no prediction is a guess."""
        xp, n = self.xp, 0
        parts, bad = [], xp.zeros(1, dtype=self.dtype)
        for x in self._chunks(X):
            a = self._model.forward(self.weights, self.biases, x.T)
            parts.append(task.decide(a).T.astype(self.dtype).ravel())
            bad += (~xp.isfinite(a)).any(axis=0).sum()
            n += x.shape[0]
        host = backend.to_numpy(xp.concatenate(parts + [bad]))
        _finite_outputs(int(host[-1]), n)
        return host[:-1].reshape(n, -1)

    def _chunks(self, X: Any) -> Iterator[Any]:
        """Rows of `X` on the device, checked and scaled, `CHUNK` at a time; rows on the host
        are sent to a GPU a chunk at a time, so that its memory holds one chunk of them."""
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[0] > CHUNK and self.device != "cpu":
            for k in range(0, X.shape[0], CHUNK):
                yield self._rows(X[k : k + CHUNK])
            return
        X = self._rows(X)
        for k in range(0, X.shape[0], CHUNK):
            yield X[k : k + CHUNK]

    @_on_device
    @np.errstate(over="ignore", invalid="ignore")  # outputs that overflow are reported below, by count
    def predict(self, X: Any) -> np.ndarray:
        """Predictions for rows of `X`, as NumPy arrays: a classifier's labels `(N,)` as ints (the
        most active output neuron; with one output, 1 where it is at least 0.5), a multi-label
        classifier's 0s and 1s `(N, sizes[-1])`, a regression's outputs `(N, sizes[-1])`.
        Raises `ValueError` when an output is NaN or Inf, so that no prediction is a guess."""
        task = self._task()
        host = self._host_outputs(X, task)
        if isinstance(task, tasks.Classification):
            return host[:, 0].astype(np.int64)
        if isinstance(task, tasks.MultiLabel):
            return host.astype(np.int64)
        if self._target_scaling is not None:
            host = (host * self._target_scaling.scale + self._target_scaling.offset).astype(self.dtype)
        return host

    @_on_device
    @np.errstate(over="ignore", invalid="ignore")
    def outputs(self, X: Any) -> np.ndarray:
        """The output activations for rows of `X`, as NumPy rows `(N, sizes[-1])` in the
        network's dtype, computed on the device a chunk of rows at a time; `ValueError`
        when one is NaN or Inf."""
        return self._host_outputs(X, tasks.Regression())  # a regression's decision is the outputs themselves

    @_on_device
    @np.errstate(over="ignore", invalid="ignore")
    def predict_proba(self, X: Any) -> np.ndarray:
        """A classifier's probabilities for rows of `X`, as NumPy rows: with several outputs, the
        output activations (a softmax's are class probabilities; a sigmoid's are each label's, for
        a multi-label classifier); with one output p, the rows [1 − p, p]. Raises `ValueError`
        for a regression, and when an output is NaN or Inf."""
        task = self._task()
        if isinstance(task, tasks.Regression):
            raise ValueError("predict_proba is for classifiers: this network is a regression (use predict)")
        p = self.outputs(X)
        return np.hstack([1 - p, p]) if p.shape[1] == 1 else p

    @_on_device
    @np.errstate(over="ignore", invalid="ignore")
    def metrics(self, X: Any, y: Any) -> dict[str, float]:
        """The mean cost of rows of `X` against `y` and the task's scores: `accuracy` for a
        classifier, `rmse` and `r2` for a regression (in the targets' units, also with a
        `target_scaling`; the cost is the network's, of the scaled targets). Raises
        `ValueError` when an output is NaN or Inf."""
        task = self._task(y)
        X = self._rows(X)
        if isinstance(task, tasks.Regression) and self._target_scaling is not None:
            y, task = self._targets(y), task.in_units(self._target_scaling.scale)
        targets = task.targets(y, X.shape[0], self.sizes[-1], "y", dtype=self.dtype, device=self.device)
        cost, bad, *totals = backend.to_numpy(self._model.totals(self.weights, self.biases, task, X, targets)).tolist()
        _finite_outputs(int(bad), X.shape[0])
        return {"cost": cost / X.shape[0], **task.score(totals, X.shape[0])}

    def evaluate(self, X: Any, y: Any) -> float:
        """The task's headline score on rows of `X`: a classifier's accuracy (the fraction of rows
        whose predicted label matches `y`), a regression's R² (`metrics` has them all).
        Raises `ValueError` when an output is NaN or Inf."""
        return self.metrics(X, y)[self._task(y).headline]

    def to(self, device: str) -> Network:
        """Move the parameters to `device` in place; returns the network."""
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
        skip = ("xp", "weights", "biases", "_params", "_work", "_layout", "_inputs", "_model", "_training")
        state = {k: v for k, v in self.__dict__.items() if k not in skip}
        state["weights"], state["biases"] = self._host_parameters()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        params = state.pop("weights") + state.pop("biases")
        state.pop("_work", None)  # pickles of xpbp 0.1 carry an empty one, and no trained_on
        state.setdefault("trained_on", None)
        state.setdefault("classes", None)
        state.setdefault("_scaling", None)
        state.setdefault("_target_scaling", None)
        state.setdefault("task", "classification")  # pickles from before networks knew their task
        self.__dict__.update(state)
        self._training = threading.Lock()
        self._on(backend.usable(self.device, "a network pickled on"))
        self._layout = Layout(tuple(self.sizes))
        self._place(np.concatenate([np.asarray(p).ravel() for p in params]))

    def save(self, path: str | os.PathLike) -> None:
        """Write the network to one versioned `.npz` file, atomically: a temporary file in
        the same directory, flushed to disk, then renamed over `path`. A failed save leaves
        any previous file at `path` as it was."""
        if str(path).lower().endswith(".onnx"):
            raise ValueError(
                f"save writes xpbp's own .npz format, not ONNX: to write an ONNX model use net.to_onnx({str(path)!r}) "
                "or xpbp export MODEL.npz OUT.onnx"
            )
        formats.write_model(path, self._model_file())

    def to_onnx(self, path: str | os.PathLike) -> None:
        """Write the network, with its scaling, as an ONNX graph (`xpbp.export`; needs the
        `onnx` package), atomically as `save` writes."""
        from . import export  # onnx is an optional extra, imported only to export

        export.write(self._model_file(), path)

    def _model_file(self) -> formats.ModelFile:
        """What `save` writes: the configuration, host copies of the parameters, and the rest."""
        if self.classes is not None and len(self.classes) != max(self.sizes[-1], 2):
            raise ValueError(f"classes must name the {max(self.sizes[-1], 2)} classes of the output layer, got {self.classes!r}")
        classes = None if self.classes is None else tuple(str(c) for c in self.classes)
        return formats.ModelFile(
            self._config(), *self._host_parameters(), self.trained_on, classes, self._scaling, self._target_scaling
        )


def _finite_outputs(bad: int, n: int) -> None:
    if bad:
        raise ValueError(
            f"the network's outputs for {bad} of the {n} rows of X are NaN or Inf, so they have no prediction: "
            "finite but extreme inputs overflow its weighted sums; scale the inputs"
        )


def load(path: str | os.PathLike, device: str = "auto") -> Network:
    """Read a network written by `Network.save`, onto `device`. Never unpickles;
    raises `ValueError` for a file that is not a valid xpbp model."""
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
            task=config.task,
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} is a damaged xpbp model file: {e}") from None
    net._place(np.concatenate([p.ravel() for p in model.weights + model.biases]))
    net.trained_on, net.classes, net.scaling, net.target_scaling = (
        model.trained_on,
        model.classes,
        model.scaling,
        model.target_scaling,
    )
    return net
