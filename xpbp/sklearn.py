"""A scikit-learn classifier around :class:`xpbp.Network`.

Needs scikit-learn (``pip install 'xpbp[sklearn]'``). Labels may be any values
scikit-learn accepts for classification; they are encoded as ``classes_`` indices and
one-hot targets internally. Inputs are validated by scikit-learn's own helpers, so
errors read as scikit-learn's do.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:
    raise ImportError(f"xpbp.sklearn needs scikit-learn ({e}); install it with: pip install 'xpbp[sklearn]'") from None

from .backend import to_numpy
from .network import Network

__all__ = ["XPBPClassifier"]

# The output layer each cost is defined for.
_OUTPUT = {"log_likelihood": "softmax", "cross_entropy": "sigmoid", "quadratic": "sigmoid"}


class XPBPClassifier(ClassifierMixin, BaseEstimator):
    """A fully-connected network trained by backpropagation (BP1–BP4) with mini-batch SGD.

    Parameters
    ----------
    hidden_layer_sizes : widths of the hidden layers (an int for one hidden layer).
    activation : σ of the hidden layers: ``"sigmoid"``, ``"tanh"``, ``"relu"`` or ``"identity"``.
    cost : ``"log_likelihood"`` (softmax output), ``"cross_entropy"`` or ``"quadratic"`` (sigmoid output).
    epochs, batch_size, eta, lmbda, momentum : as in :meth:`xpbp.Network.fit`; ``batch_size`` is
        capped at the number of training examples.
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    dtype : ``"float64"`` (default, so predictions do not depend on how the rows are batched)
        or ``"float32"``.
    random_state : None, an int or a ``numpy.random.RandomState``; seeds initialisation and shuffling.

    Attributes
    ----------
    classes_ : the class labels seen by ``fit``.
    network_ : the trained :class:`xpbp.Network`.
    history_ : its :class:`xpbp.History`.
    n_features_in_ : the number of input features.
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
        a = to_numpy(self.network_.feedforward(X.T)).T.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(
                "the network's outputs for some rows of X are NaN or Inf, so they have no probabilities: "
                "finite but extreme inputs overflow its weighted sums; scale the inputs"
            )
        if _OUTPUT[self.network_.cost_name] != "softmax":
            a = np.maximum(a, np.finfo(a.dtype).tiny)
            a /= a.sum(axis=1, keepdims=True)
        return a

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[proba.argmax(axis=1)]
