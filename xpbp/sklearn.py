"""scikit-learn estimators on `xpbp.Network`: `MLPClassifier` and
`MLPRegressor`, drop-ins for scikit-learn's own MLP; and `XPBPClassifier`, an
estimator in Nielsen's terms (`eta`, `lmbda`, `epochs`).

Needs scikit-learn (`pip install scikit-learn`; in a checkout `pip install -e '.[sklearn]'`). Labels may be any values
scikit-learn accepts for classification; they are encoded as `classes_` indices and
one-hot targets internally. Inputs are validated by scikit-learn's own helpers, so
errors read as scikit-learn's do.
"""

from __future__ import annotations

import json
import numbers
import os
import warnings
from collections.abc import Iterable
from numbers import Real
from typing import Any

import numpy as np

try:
    from scipy.sparse import issparse
    from sklearn import neural_network as sklearn_mlp
    from sklearn.base import BaseEstimator, ClassifierMixin, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
    from sklearn.utils import check_random_state, shuffle
    from sklearn.utils._param_validation import Interval, StrOptions
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:
    raise ImportError(
        f"xpbp.sklearn needs scikit-learn ({e}); install it with: pip install scikit-learn "
        "(in an xpbp checkout: pip install -e '.[sklearn]')"
    ) from None

from . import files, mlp_checkpoints, optimizers
from .backend import device_of, to_device, to_numpy, using
from .network import Network
from .runs import DivergenceError
from .validation import fingerprint

__all__ = ["MLPClassifier", "MLPRegressor", "XPBPClassifier"]

# The output layer each cost is defined for.
_OUTPUT = {"log_likelihood": "softmax", "cross_entropy": "sigmoid", "quadratic": "sigmoid"}


class XPBPClassifier(ClassifierMixin, BaseEstimator):
    """A fully-connected network trained by backpropagation (BP1–BP4) with mini-batch SGD,
    in Nielsen's terms (`eta`, `lmbda`, `epochs`): the estimator xpbp had before the
    drop-ins. For code written for scikit-learn's MLP, use `MLPClassifier`; both
    predict through `xpbp.Network.outputs`.

    Parameters
    ----------
    hidden_layer_sizes
        widths of the hidden layers (an int for one hidden layer).
    activation
        σ of the hidden layers: `"sigmoid"`, `"tanh"`, `"relu"` or `"identity"`.
    cost
        `"log_likelihood"` (softmax output), `"cross_entropy"` or `"quadratic"` (sigmoid output).
    epochs, batch_size, eta, lmbda, momentum
        as in `xpbp.Network.fit`; `batch_size` is
        capped at the number of training examples.
    device
        `"auto"`, `"cpu"`, `"cuda"` or `"cuda:N"`.
    dtype
        `"float64"` (default, so predictions do not depend on how the rows are batched)
        or `"float32"`.
    random_state
        None, an int or a `numpy.random.RandomState`; seeds initialisation and shuffling.

    Attributes
    ----------
    classes_
        the class labels seen by `fit`.
    network_
        the trained `xpbp.Network`.
    history_
        its `xpbp.History`.
    n_features_in_
        the number of input features.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "sigmoid",
        cost: str = "log_likelihood",
        epochs: int = 30,
        batch_size: int = 32,
        eta: float = 0.1,
        lmbda: float = 0.0,
        momentum: float = 0.9,
        device: str = "auto",
        dtype: str = "float64",
        random_state: Any = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.cost = cost
        self.epochs = epochs
        self.batch_size = batch_size
        self.eta = eta
        self.lmbda = lmbda
        self.momentum = momentum
        self.device = device
        self.dtype = dtype
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> XPBPClassifier:
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        if self.cost not in _OUTPUT:
            raise ValueError(f"cost must be one of {', '.join(map(repr, _OUTPUT))}, got {self.cost!r}")
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, numbers.Integral) else hidden  # as MLPClassifier takes it
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Iterable):
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints, got {self.hidden_layer_sizes!r}")
        self.classes_, labels = np.unique(y, return_inverse=True)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        self.network_ = Network(
            [X.shape[1], *hidden, len(self.classes_)],
            activation=self.activation,
            output_activation=_OUTPUT[self.cost],
            cost=self.cost,
            dtype=self.dtype,
            device=self.device,
            seed=seed,
        )
        self.history_ = self.network_.fit(
            X,
            labels,
            epochs=self.epochs,
            batch_size=min(self.batch_size, len(X)),
            eta=self.eta,
            lmbda=self.lmbda,
            momentum=self.momentum,
            progress=False,
        )
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: the softmax output, or the sigmoid outputs normalised to sum to 1."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        a = self.network_.outputs(X).astype(np.float64)  # the drop-ins' forward pass; ValueError on NaN or Inf
        if _OUTPUT[self.network_.cost_name] != "softmax":
            a = np.maximum(a, np.finfo(a.dtype).tiny)
            a /= a.sum(axis=1, keepdims=True)
        return a

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[proba.argmax(axis=1)]


# ---------------------------------------------------------------- scikit-learn's MLP, on xpbp

_HIDDEN = {"logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "identity": "identity"}
# scikit-learn's output layer (out_activation_) and the cost it trains with there.
_OUTPUT_LAYER = {
    "softmax": ("softmax", "log_likelihood"),
    "logistic": ("sigmoid", "cross_entropy"),
    "identity": ("identity", "squared_error"),
    "exp": ("exp", "poisson"),
}
_EXTRA = {
    "device": [str],
    "dtype": [StrOptions({"float32", "float64"}), None],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "comm": "no_validation",  # an mpi4py communicator, checked by xpbp.distributed
    "checkpoint": [str, os.PathLike, None],
    "resume": ["boolean"],
}


_MLP: Any = object  # typed as Any: what the mixin reads (self.solver, self.coefs_, ...) is scikit-learn's MLP's


class _OnXpbp(_MLP):
    """What both drop-ins change in scikit-learn's MLP: its training loops drive an
    `xpbp.training.Trainer` (BP1–BP4 on `device`) and its forward pass is
    `xpbp.Network.outputs`; the rest (validation, attributes, initialisation,
    shuffling, schedules, stopping, scoring) is scikit-learn's own code."""

    _live: Network | None = None  # the network being trained, while a fit runs
    _no_improvement_count: int
    coefs_: list[Any]
    intercepts_: list[Any]

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, Any]:
        X, y = super()._validate_input(X, y, incremental, reset)
        return (X if self.dtype is None else X.astype(self.dtype, copy=False)), y

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> Any:
        if self.solver == "lbfgs" and self.dropout:
            raise ValueError("dropout needs a stochastic solver: solver='adam' or solver='sgd', not 'lbfgs'")
        if self.solver == "lbfgs" and self.comm is not None:
            raise ValueError(
                "comm (data-parallel training) needs a stochastic solver: solver='adam' or solver='sgd', not 'lbfgs'"
            )
        if self.checkpoint is not None or self.resume:
            self._check_checkpoint(incremental)
        try:
            return super()._fit(X, y, sample_weight=sample_weight, incremental=incremental)
        finally:
            self._live = None

    def _check_checkpoint(self, incremental: bool) -> None:
        if self.resume and self.checkpoint is None:
            raise ValueError("resume=True needs checkpoint=PATH, the file to go on from")
        if self.solver == "lbfgs":
            raise ValueError("checkpoint needs a stochastic solver: solver='adam' or solver='sgd', not 'lbfgs'")
        if incremental:
            raise ValueError("partial_fit writes no checkpoint: give checkpoint= to fit, or set it to None")
        if self.resume and self.warm_start:
            raise ValueError(
                "resume=True goes on from the checkpoint, warm_start=True from the estimator's own coefs_: give one of them"
            )
        if self.comm is not None:
            raise ValueError("checkpoints of a data-parallel fit (comm=) are not offered yet: give checkpoint=None with comm")
        files.writable(self.checkpoint)

    def _identity(self, X: Any, y: Any, sample_weight: Any) -> mlp_checkpoints.Identity:
        """This run, as a checkpoint names it: the settings that shape training, the rows, targets and
        sample weights, the layout."""
        skip = {"checkpoint", "resume", "verbose", "max_iter", "device", "comm"}
        settings = {k: v for k, v in sorted(self.get_params().items()) if k not in skip}
        text = json.dumps(settings, default=_setting)
        rows = np.ascontiguousarray(_dense(X))
        targets = np.ascontiguousarray(np.asarray(y, dtype=rows.dtype).reshape(len(rows), -1))
        weights = np.ones((len(rows), 1), dtype=rows.dtype) if sample_weight is None else sample_weight
        weights = np.ascontiguousarray(np.asarray(weights, dtype=rows.dtype).reshape(len(rows), 1))
        data = int(fingerprint(np, rows, targets, weights))
        return mlp_checkpoints.Identity(text, data, tuple((int(a), int(b)) for a, b in (c.shape for c in self.coefs_)))

    def _save(self, order: Any, stopped: bool, rng_start: Any, identity: mlp_checkpoints.Identity) -> None:
        step, slots = self._xpbp_optimizer.state()
        early = self.early_stopping
        counters = {
            "n_iter": self.n_iter_,
            "t": self.t_,
            "stopped": stopped,
            "no_improvement": self._no_improvement_count,
            "learning_rate": float(self._optimizer.learning_rate),
            "best_loss": self.best_loss_,
            "best_validation_score": self.best_validation_score_ if early else None,
        }
        state = mlp_checkpoints.MLPState(
            identity,
            tuple(self.coefs_),
            tuple(self.intercepts_),
            int(step),
            tuple(to_numpy(b) for b in slots),
            rng_start,
            self._random_state.get_state(),
            np.asarray(order, dtype=np.int64),
            counters,
            np.asarray(self.loss_curve_, dtype=np.float64),
            np.asarray(self.validation_scores_, dtype=np.float64) if early else None,
            tuple(self._best_coefs) if early else (),
            tuple(self._best_intercepts) if early else (),
        )
        mlp_checkpoints.write(self.checkpoint, state)

    def _restore(self, saved: mlp_checkpoints.MLPState) -> None:
        """scikit-learn's side of a saved run (the optimizer's buffers and the generator go back once the trainer is made)."""
        c = saved.counters
        self.coefs_ = [a.astype(self.coefs_[0].dtype) for a in saved.coefs]
        self.intercepts_ = [a.astype(self.intercepts_[0].dtype) for a in saved.intercepts]
        self.n_iter_, self.t_, self._no_improvement_count = int(c["n_iter"]), int(c["t"]), int(c["no_improvement"])
        self._optimizer.learning_rate = float(c["learning_rate"])
        self.loss_curve_ = saved.loss_curve.tolist()
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else None
        self.best_loss_ = c["best_loss"]
        if saved.validation_scores is not None:
            self.validation_scores_ = saved.validation_scores.tolist()
            self.best_validation_score_ = float(c["best_validation_score"])
            self._best_coefs, self._best_intercepts = list(saved.best_coefs), list(saved.best_intercepts)

    def _task(self) -> str:
        if not is_classifier(self):
            return "regression"
        return "multilabel" if self._label_binarizer.y_type_ == "multilabel-indicator" else "classification"

    def _network(self, dtype: Any) -> Network:
        """The network of `coefs_` and `intercepts_` (scikit-learn's orientation: w is coefs_ᵀ)."""
        output, cost = _OUTPUT_LAYER[self.out_activation_]
        sizes = [self.coefs_[0].shape[0], *(c.shape[1] for c in self.coefs_)]
        key = (tuple(sizes), self.activation, output, str(np.dtype(dtype)), self.device, self._task())
        cached = getattr(self, "_xpbp_net", None)
        if cached is None or cached[0] != key:
            net = Network(
                sizes,
                activation=_HIDDEN[self.activation],
                output_activation=output,
                cost=cost,
                dtype=key[3],
                device=self.device,
                seed=0,
                task=key[5],
            )
            self._xpbp_net = cached = (key, net)
        net = cached[1]
        for w, b, coef, intercept in zip(net.weights, net.biases, self.coefs_, self.intercepts_):
            w[...] = to_device(np.ascontiguousarray(coef.T, dtype=net.dtype), net.device)
            b[...] = to_device(intercept.reshape(-1, 1).astype(net.dtype), net.device)
        return net

    def _store(self, net: Network) -> None:
        self.coefs_ = [to_numpy(w).T.copy() for w in net.weights]
        self.intercepts_ = [to_numpy(b).ravel().copy() for b in net.biases]

    def _forward_pass_fast(self, X: Any, check_input: bool = True) -> np.ndarray:
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        net = self._live if self._live is not None else self._network(self.coefs_[0].dtype)
        X = _dense(X)
        return net.outputs(X if not isinstance(X, np.ndarray) else X.astype(net.dtype, copy=False))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {k: v for k, v in state.items() if k not in ("_xpbp_net", "_live")}

    # Arrays on a GPU (CuPy's) in, arrays on that GPU out: scikit-learn's validation runs on
    # NumPy, so device arrays are brought to the host for it (one transfer each), and
    # numeric results go back to the device of the first array given.

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        return super().fit(_host(X), _host(y), sample_weight=_host(sample_weight))

    def predict(self, X: Any) -> Any:
        return _like(super().predict(_host(X)), X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        return float(super().score(_host(X), _host(y), sample_weight=_host(sample_weight)))

    def _optimizers(self) -> tuple[Any, optimizers.Optimizer]:
        """scikit-learn's optimizer (for its η schedule and its stopping rule) and xpbp's (for the update)."""
        if self.solver == "sgd":
            schedule = SGDOptimizer(
                [], self.learning_rate_init, self.learning_rate, self.momentum, self.nesterovs_momentum, self.power_t
            )
            return schedule, optimizers.SGD(self.momentum, nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        schedule = AdamOptimizer([], self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon)
        return schedule, optimizers.Adam(self.beta_1, self.beta_2, self.epsilon, efficient=True)

    def _split(self, X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any, tuple[Any, Any, Any]]:
        """The rows trained on, and the held-out `(X, y, sample_weight)` when early stopping (as scikit-learn carves it)."""
        if not self.early_stopping:
            return X, y, sample_weight, (None, None, None)
        stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
        parts = train_test_split(
            *(X, y) if sample_weight is None else (X, y, sample_weight),
            random_state=self._random_state,
            test_size=self.validation_fraction,
            stratify=stratify,
        )
        X_train, X_val, y_train, y_val = parts[:4]
        w_train, w_val = parts[4:] if sample_weight is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of your dataset.")
        if is_classifier(self):
            y_val = self._label_binarizer.inverse_transform(y_val)
        return X_train, y_train, w_train, (X_val, y_val, w_val)

    def _fit_stochastic(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        activations: Any,
        deltas: Any,
        coef_grads: Any,
        intercept_grads: Any,
        layer_units: Any,
        incremental: bool,
    ) -> None:
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer, self._xpbp_optimizer = self._optimizers()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        identity = self._identity(X, y, sample_weight) if self.checkpoint is not None else None
        saved = None
        if identity is not None and self.resume and os.path.exists(self.checkpoint):
            saved = mlp_checkpoints.read(self.checkpoint, identity)
            self._random_state.set_state(saved.rng_start)  # the validation split as it was drawn
        rng_start = self._random_state.get_state()
        X, y, sample_weight, held = self._split(X, y, sample_weight)
        n = X.shape[0]
        if saved is not None:
            if len(saved.order) != n:
                raise ValueError(f"{self.checkpoint} is a checkpoint of a run over {len(saved.order)} training rows, not {n}")
            if int(saved.counters["n_iter"]) > self.max_iter:
                raise ValueError(
                    f"{self.checkpoint} is a checkpoint after epoch {saved.counters['n_iter']}, past max_iter={self.max_iter}: "
                    "give max_iter at least as large, or resume=False"
                )
            self._restore(saved)
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped", stacklevel=2)
            batch_size = int(np.clip(self.batch_size, 1, n))
        net = self._network(X.dtype)
        if self.dropout:
            net.seed = int(self._random_state.randint(2**31 - 1))  # the masks' key
        trainer = net.trainer(
            _dense(X),
            np.asarray(y, dtype=X.dtype),
            epochs=self.max_iter,
            batch_size=batch_size,
            eta=self.learning_rate_init,
            lmbda=self.alpha,
            decay_over="batch",
            optimizer=self._xpbp_optimizer,
            shuffle=False,
            sample_weight=sample_weight,
            dropout=self.dropout,
            progress=False,
            comm=self.comm,
        )
        if held[0] is not None:
            held = (to_device(_dense(held[0]), net.device), *held[1:])  # sent once, scored every epoch
        order = np.arange(n, dtype=int)
        if saved is not None:
            self._xpbp_optimizer.restore(saved.step, [to_device(b, net.device) for b in saved.slots])
            self._random_state.set_state(saved.rng)
            trainer.epochs_trained, order = self.n_iter_, saved.order  # the epochs' dropout masks are keyed by their count
        else:
            self.n_iter_ = 0
        saving = None if identity is None else (rng_start, identity)
        self._live = net
        try:
            with using(net.device), trainer.running():
                if saved is None or not saved.counters["stopped"]:
                    self._epochs(trainer, net, held, order, incremental, saving)
                if saved is not None and self.n_iter_ == saved.counters["n_iter"] == self.max_iter:
                    self._warn_max_iter()  # a finished run resumed: the warning its last epoch gave
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=2)
        except DivergenceError as e:
            self._store(net)
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            ) from e
        self._store(net)
        if self.early_stopping:
            self.coefs_, self.intercepts_ = self._best_coefs, self._best_intercepts

    def _epochs(self, trainer: Any, net: Network, held: tuple[Any, Any, Any], order: Any, incremental: bool, saving: Any) -> None:
        """scikit-learn's epoch loop from epoch `n_iter_` + 1, each epoch one `xpbp.training.Trainer.epoch`
        (and with `saving`, `(generator state before the split, identity)`, a checkpoint after it)."""
        sample_idx, n = order, len(order)
        for _ in range(self.n_iter_, self.max_iter):
            if self.shuffle:
                sample_idx = shuffle(sample_idx, random_state=self._random_state)
            eta = self._optimizer.learning_rate if self.solver == "sgd" else self.learning_rate_init
            trainer.epoch(self.n_iter_ + 1, order=sample_idx if self.shuffle else None, eta=eta)
            self.n_iter_ += 1
            self.loss_ = trainer.history.train_cost[-1]
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            if self.early_stopping:
                self._store(net)  # scikit-learn copies the best epoch's coefs_: one transfer of θ per epoch
            self._update_no_improvement_count(self.early_stopping, *held)
            self._optimizer.iteration_ends(self.t_)
            stop = False
            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if self.early_stopping else "Training loss"
                msg = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
                stop = self._optimizer.trigger_stopping(msg, self.verbose)
                if not stop:
                    self._no_improvement_count = 0
            if saving is not None:
                if not self.early_stopping:  # with it, coefs_ were stored from this epoch's θ above
                    self._store(net)
                self._save(sample_idx, stop, *saving)
            if stop:
                break
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                self._warn_max_iter()

    def _warn_max_iter(self) -> None:
        warnings.warn(
            f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization hasn't converged yet.",
            ConvergenceWarning,
            stacklevel=3,
        )

    def _fit_lbfgs(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        activations: Any,
        deltas: Any,
        coef_grads: Any,
        intercept_grads: Any,
        layer_units: Any,
    ) -> None:
        net = self._network(X.dtype)
        trainer = net.trainer(
            _dense(X),
            np.asarray(y, dtype=X.dtype),
            batch_size=X.shape[0],
            lmbda=self.alpha,
            decay_over="batch",
            shuffle=False,
            sample_weight=sample_weight,
            progress=False,
        )
        self._lbfgs = (trainer, _packed_index(layer_units))
        try:
            with using(net.device), trainer.running():
                super()._fit_lbfgs(X, y, sample_weight, activations, deltas, coef_grads, intercept_grads, layer_units)
        finally:
            del self._lbfgs

    def _loss_grad_lbfgs(self, packed: Any, X: Any, y: Any, sample_weight: Any, *work: Any) -> tuple[float, np.ndarray]:
        """scikit-learn's loss and its gradient, packed its way, at `packed`: from BP1–BP4 on the device."""
        trainer, index = self._lbfgs
        trainer.theta[...] = to_device(np.asarray(packed)[index].astype(trainer.theta.dtype), device_of(trainer.theta))
        cost, grad = trainer.gradient()
        out = np.empty(len(index), dtype=np.float64)
        out[index] = to_numpy(grad)
        return float(to_numpy(cost)), out


def _setting(v: Any) -> Any:
    """A parameter's value as JSON: NumPy numbers as the numbers they are, other objects (a
    `RandomState`) by their type."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return type(v).__name__


def _host(a: Any) -> Any:
    """A device array as a NumPy one; anything else as it is."""
    return to_numpy(a) if a is not None and device_of(a) != "cpu" else a


def _like(result: Any, X: Any) -> Any:
    """`result` on the device `X` lives on, when that is a GPU and `result` holds numbers
    (class labels that are strings stay NumPy arrays)."""
    device = device_of(X)
    return to_device(result, device) if device != "cpu" and np.asarray(result).dtype.kind in "biuf" else result


def _dense(X: Any) -> Any:
    return X.toarray() if issparse(X) else X


def _packed_index(layer_units: list[int]) -> np.ndarray:
    """Where each element of xpbp's θ (every w `(out, in)`, then every b) lies in scikit-learn's
    packed vector (every coef `(in, out)`, raveled, then every intercept)."""
    parts, start = [], 0
    for n_in, n_out in zip(layer_units[:-1], layer_units[1:]):
        parts.append(start + np.arange(n_in * n_out).reshape(n_in, n_out).T.ravel())
        start += n_in * n_out
    parts.append(np.arange(start, start + sum(layer_units[1:])))
    return np.concatenate(parts)


class _DeviceClassifier(_OnXpbp):
    """The classifier's own methods, with device arrays in and out."""

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> Any:
        return super().partial_fit(_host(X), _host(y), sample_weight=_host(sample_weight), classes=classes)

    def predict_proba(self, X: Any) -> Any:
        return _like(super().predict_proba(_host(X)), X)

    def predict_log_proba(self, X: Any) -> Any:
        return _like(super().predict_log_proba(_host(X)), X)


class _DeviceRegressor(_OnXpbp):
    """The regressor's own methods, with device arrays in and out."""

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        return super().partial_fit(_host(X), _host(y), sample_weight=_host(sample_weight))


class MLPClassifier(_DeviceClassifier, sklearn_mlp.MLPClassifier):
    """scikit-learn's `sklearn.neural_network.MLPClassifier`, trained by xpbp: the same
    parameters, defaults, attributes, methods, warnings and errors (they are scikit-learn's own
    code), with BP1–BP4 and the update on `device`. Extra parameters, off by default:

    device : `"cpu"` (default), `"auto"`, `"cuda"`, `"cuda:N"` (or `"strict"`, the test device).
    dtype : None (the data's: float64, or float32 kept as float32), `"float32"` or `"float64"`.
    dropout : drop each hidden neuron with this probability in training (stochastic solvers).
    comm : an mpi4py communicator (None: one process). Every rank calls `fit` alike, with the same
        data and `random_state`; each computes its share of every mini-batch's gradient, summed
        across the ranks (`xpbp.distributed`), so P ranks train the network one would.
        Stochastic solvers only.
    checkpoint, resume : a file that `fit` rewrites after every epoch (atomically), and whether
        `fit` goes on from the run saved there, if there is one: the same settings (`max_iter`
        may grow) and data, ending where an unbroken run would (`xpbp.mlp_checkpoints`).
        Stochastic solvers and `fit` only.

    See the documentation's "Coming from scikit-learn" page for where results can differ.
    """

    _parameter_constraints: dict = {**sklearn_mlp.MLPClassifier._parameter_constraints, **_EXTRA}

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        device: str = "cpu",
        dtype: str | None = None,
        dropout: float = 0.0,
        comm: Any = None,
        checkpoint: Any = None,
        resume: bool = False,
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
        )
        self.device, self.dtype, self.dropout, self.comm = device, dtype, dropout, comm
        self.checkpoint, self.resume = checkpoint, resume


class MLPRegressor(_DeviceRegressor, sklearn_mlp.MLPRegressor):
    """scikit-learn's `sklearn.neural_network.MLPRegressor` (`loss="squared_error"` or
    `"poisson"`), trained by xpbp, with the extra parameters of `MLPClassifier`."""

    _parameter_constraints: dict = {**sklearn_mlp.MLPRegressor._parameter_constraints, **_EXTRA}

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        device: str = "cpu",
        dtype: str | None = None,
        dropout: float = 0.0,
        comm: Any = None,
        checkpoint: Any = None,
        resume: bool = False,
    ) -> None:
        super().__init__(
            loss=loss,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
        )
        self.device, self.dtype, self.dropout, self.comm = device, dtype, dropout, comm
        self.checkpoint, self.resume = checkpoint, resume
