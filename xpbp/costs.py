"""Cost functions C, each a small class in the manner of Nielsen's `network2.py`.

For output activations `a` and targets `y` of shape `(n_out, m)` (examples as
columns):

- `fn(a, y)`: the cost Cₓ of each example, shape `(m,)`;
- `prime(a, y)`: ∇ₐC, the gradient of Cₓ with respect to the output activations;
- `delta(z, a, y, activation)`: the output error δᴸ of equation BP1.

Logarithms are guarded at 0 and 1: a saturated output costs −ln(tiny) (about 87 in
float32, 708 in float64) instead of ∞, and a term whose target is 0 costs nothing.
"""

from __future__ import annotations

from typing import Any

from .activations import Activation
from .backend import get_array_module

__all__ = ["NAMES", "Cost", "CrossEntropyCost", "LogLikelihoodCost", "PoissonCost", "QuadraticCost", "SquaredErrorCost", "get"]


def _log(a: Any) -> Any:
    """ln a, with a clipped below at the dtype's smallest normal number."""
    xp = get_array_module(a)
    return xp.log(xp.maximum(a, xp.finfo(a.dtype).tiny))


def _xlog(y: Any, a: Any) -> Any:
    """y ln a, and 0 wherever y is 0 (so 0·ln 0 = 0)."""
    return get_array_module(a).where(y == 0, 0, y * _log(a))


class Cost:
    name = ""
    # The output activation whose σ′ cancels in `delta`; None means any elementwise one.
    requires: str | None = None
    # The learning rate Nielsen's examples use with this cost: fit's default for η.
    eta = 3.0

    def fn(self, a: Any, y: Any) -> Any:
        raise NotImplementedError

    def prime(self, a: Any, y: Any, out: Any = None) -> Any:
        raise NotImplementedError

    def delta(self, z: Any, a: Any, y: Any, activation: Activation, out: Any = None) -> Any:
        """BP1: δᴸ = ∇ₐC ⊙ σ′(zᴸ). With `out` (a buffer of a's shape), δᴸ is written there
        and σ′(zᴸ) over z, which nothing needs after BP1 (a must not be z): nothing is allocated."""
        if out is None:
            return self.prime(a, y) * activation.prime(z, a)
        return get_array_module(a).multiply(self.prime(a, y, out=out), activation.prime(z, a, out=z), out=out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class QuadraticCost(Cost):
    """Cₓ = ½‖y − a‖²."""

    name = "quadratic"
    eta = 3.0  # network.py, chapter 1

    def fn(self, a: Any, y: Any) -> Any:
        d = a - y
        return 0.5 * (d * d).sum(axis=0)

    def prime(self, a: Any, y: Any, out: Any = None) -> Any:
        return get_array_module(a).subtract(a, y, out=out)


class SquaredErrorCost(QuadraticCost):
    """scikit-learn's squared error, Cₓ = ½‖y − a‖²/n_out (the mean over the outputs), with
    the gradient scikit-learn trains with: the quadratic cost's, ∇ₐC = a − y. For one output
    the two agree; for several, the gradient is n_out times the reported cost's, as in
    scikit-learn's `MLPRegressor` (which `xpbp.sklearn.MLPRegressor` follows)."""

    name = "squared_error"

    def fn(self, a: Any, y: Any) -> Any:
        return super().fn(a, y) / a.shape[0]


class CrossEntropyCost(Cost):
    """Cₓ = −Σⱼ [yⱼ ln aⱼ + (1 − yⱼ) ln(1 − aⱼ)], for a sigmoid output layer."""

    name = "cross_entropy"
    requires = "sigmoid"
    eta = 0.5  # network2.py, chapter 3

    def fn(self, a: Any, y: Any) -> Any:
        return -(_xlog(y, a) + _xlog(1 - y, 1 - a)).sum(axis=0)

    def prime(self, a: Any, y: Any, out: Any = None) -> Any:
        return get_array_module(a).divide(a - y, a * (1 - a), out=out)

    def delta(self, z: Any, a: Any, y: Any, activation: Activation, out: Any = None) -> Any:
        # BP1 with σ′(z) = a(1 − a) cancelling the denominator of ∇ₐC.
        return get_array_module(a).subtract(a, y, out=out)


class LogLikelihoodCost(Cost):
    """Cₓ = −Σⱼ yⱼ ln aⱼ, which is −ln a_y for a one-hot y; for a softmax output layer."""

    name = "log_likelihood"
    requires = "softmax"
    eta = 0.1  # network3.py's softmax output layers

    def fn(self, a: Any, y: Any) -> Any:
        return -_xlog(y, a).sum(axis=0)

    def prime(self, a: Any, y: Any, out: Any = None) -> Any:
        return get_array_module(a).divide(-y, a, out=out)

    def delta(self, z: Any, a: Any, y: Any, activation: Activation, out: Any = None) -> Any:
        # BP1 through softmax's Jacobian diag(a) − a aᵀ: (diag(a) − a aᵀ)(−y/a) = a − y·Σy = a − y
        # for targets that sum to 1 over each column.
        return get_array_module(a).subtract(a, y, out=out)


class PoissonCost(Cost):
    """Half the Poisson deviance, Cₓ = Σⱼ [yⱼ ln(yⱼ/aⱼ) − yⱼ + aⱼ], for counts y ≥ 0 and an
    exponential output layer (a = eᶻ > 0): scikit-learn's `MLPRegressor(loss="poisson")`."""

    name = "poisson"
    requires = "exp"
    eta = 0.001

    def fn(self, a: Any, y: Any) -> Any:
        xp = get_array_module(a)
        ratio = xp.where(y == 0, 1, y) / xp.maximum(a, xp.finfo(a.dtype).tiny)
        return (_xlog(y, ratio) - y + a).sum(axis=0)

    def prime(self, a: Any, y: Any, out: Any = None) -> Any:
        xp = get_array_module(a)
        return xp.subtract(1, y / a, out=out)

    def delta(self, z: Any, a: Any, y: Any, activation: Activation, out: Any = None) -> Any:
        # BP1 with σ′(z) = eᶻ = a cancelling the denominator of ∇ₐC = 1 − y/a.
        return get_array_module(a).subtract(a, y, out=out)


_COSTS = {cls.name: cls for cls in (QuadraticCost, SquaredErrorCost, CrossEntropyCost, LogLikelihoodCost, PoissonCost)}
NAMES = tuple(_COSTS)


def get(name: str, output: Activation | None = None) -> Cost:
    """The cost called `name`; `ValueError` if unknown, or if it does not pair with the
    `output` layer's activation (when given)."""
    if name not in _COSTS:
        raise ValueError(f"cost must be one of {', '.join(map(repr, _COSTS))}, got {name!r}")
    cost = _COSTS[name]()
    if output is not None and cost.requires and output.name != cost.requires:
        raise ValueError(f"cost={name!r} requires output_activation={cost.requires!r}, got {output.name!r}")
    if output is not None and output.name == "softmax" and name != "log_likelihood":
        raise ValueError(f"output_activation='softmax' pairs only with cost='log_likelihood', got cost={name!r}")
    return cost
