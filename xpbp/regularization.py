"""Regularisation of the weights (never the biases), Nielsen's chapter 3, each one class:
its term in the cost and its term in the gradient, for λ (`lmbda`) over the N training
examples.

- `L2`: C = C₀ + (λ/2N) Σ w², gradient term (λ/N) w (weight decay);
- `L1`: C = C₀ + (λ/N) Σ |w|, gradient term (λ/N) sgn(w), so that plain SGD takes
  w ← w − (ηλ/N) sgn(w) − η∂C₀/∂w, with sgn(0) = 0.

The gradient term is added to the gradient of the cost whichever optimizer then uses it.
The weights come first in θ and in the gradient, so each term is one operation over all
of them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .backend import get_array_module

__all__ = ["L1", "L2", "REGULARIZATIONS", "Regularization", "get"]


class Regularization:
    name: ClassVar[str] = ""

    def add(self, grad_w: Any, w: Any, factor: float, scratch: Any) -> None:
        """grad_w += factor · (the term's gradient at w), through `scratch` (w's shape)."""
        raise NotImplementedError

    def cost(self, weights: list[Any], decay: float) -> Any:
        """The term in the cost for decay λ/N, a 0-d array on the weights' device."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class L2(Regularization):
    name = "l2"

    def add(self, grad_w: Any, w: Any, factor: float, scratch: Any) -> None:
        grad_w += get_array_module(w).multiply(w, factor, out=scratch)  # (λ/N) w

    def cost(self, weights: list[Any], decay: float) -> Any:
        return 0.5 * decay * sum((w * w).sum() for w in weights)


class L1(Regularization):
    name = "l1"

    def add(self, grad_w: Any, w: Any, factor: float, scratch: Any) -> None:
        xp = get_array_module(w)
        xp.sign(w, out=scratch)
        scratch *= factor
        grad_w += scratch  # (λ/N) sgn(w)

    def cost(self, weights: list[Any], decay: float) -> Any:
        return decay * sum(abs(w).sum() for w in weights)


REGULARIZATIONS: dict[str, type[Regularization]] = {"l2": L2, "l1": L1}


def get(name: Any) -> Regularization:
    if not isinstance(name, str) or name not in REGULARIZATIONS:
        raise ValueError(f"regularization must be one of {', '.join(map(repr, REGULARIZATIONS))}, got {name!r}")
    return REGULARIZATIONS[name]()
