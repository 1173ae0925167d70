"""Activation functions σ, each a small class with `fn` (σ(z)) and `prime` (σ′(z)).

Every method works on NumPy or CuPy arrays alike (the array module comes from the
argument) and is stable for any finite z: no overflow warning at z = ±1000.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import fuse, get_array_module

__all__ = ["Activation", "Exp", "Identity", "ReLU", "Sigmoid", "Softmax", "Tanh", "get", "hidden"]


class Activation:
    """σ applied elementwise; `prime` is its derivative σ′, used by BP1 and BP2.

    `prime(z, a)` may be given a = σ(z) when the caller has it (backprop does, from the
    forward pass), so that σ′ costs no second transcendental. Both take an optional
    `out` array of z's shape and dtype to write into (the training step keeps such work
    buffers, so that it allocates nothing per step); they return the result, which for
    the identity may be z itself.
    """

    name = ""

    def fn(self, z: Any, out: Any = None) -> Any:
        raise NotImplementedError

    def into(self, z: Any, out: Any) -> Any:
        """σ(z) into `out`, for a caller that keeps its own buffers and already runs under
        `np.errstate(over="ignore")` (the training step): the same values as `fn`,
        with nothing allocated and no error state switched per call."""
        return self.fn(z, out=out)

    def prime(self, z: Any, a: Any = None, out: Any = None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@fuse
def _sigmoid(xp: Any, z: Any, a: Any) -> None:
    """a = 1/(1 + e⁻ᶻ), in a."""
    xp.negative(z, out=a)
    xp.exp(a, out=a)
    a += 1.0
    xp.reciprocal(a, out=a)


@fuse
def _sigmoid_prime(xp: Any, a: Any, p: Any) -> None:
    """p = σ′(z) = σ(z)(1 − σ(z)), from a = σ(z), in p."""
    xp.subtract(1.0, a, out=p)
    p *= a


class Sigmoid(Activation):
    """σ(z) = 1/(1 + e⁻ᶻ): one transcendental, computed in one buffer.

    For very negative z, e⁻ᶻ overflows to ∞ and 1/(1 + ∞) = 0 is the correctly rounded
    result, so NumPy's overflow warning is silenced. (The tanh form ½(1 + tanh(z/2))
    would avoid the overflow but loses σ(z) to cancellation below z ≈ −17 in float32.)
    σ and σ′ are each one fused operation: one kernel on a GPU, four and two ufuncs
    in place on the CPU.
    """

    name = "sigmoid"

    @np.errstate(over="ignore")  # as a decorator: half the cost of a with-block
    def fn(self, z: Any, out: Any = None) -> Any:
        return self.into(z, get_array_module(z).empty_like(z) if out is None else out)

    def into(self, z: Any, out: Any) -> Any:
        _sigmoid(z, out)
        return out

    def prime(self, z: Any, a: Any = None, out: Any = None) -> Any:
        s = self.fn(z) if a is None else a
        p = get_array_module(s).empty_like(s) if out is None else out
        _sigmoid_prime(s, p)
        return p


class Tanh(Activation):
    name = "tanh"

    def fn(self, z: Any, out: Any = None) -> Any:
        return get_array_module(z).tanh(z, out=out)

    def prime(self, z: Any, a: Any = None, out: Any = None) -> Any:
        xp = get_array_module(z)
        t = xp.tanh(z) if a is None else a
        p = xp.multiply(t, t, out=out)
        return xp.subtract(1.0, p, out=p)  # σ′ = 1 − tanh²


class ReLU(Activation):
    """max(0, z); σ′(0) is taken as 0."""

    name = "relu"

    def fn(self, z: Any, out: Any = None) -> Any:
        return get_array_module(z).maximum(z, 0, out=out)

    def prime(self, z: Any, a: Any = None, out: Any = None) -> Any:
        return get_array_module(z).greater(z, 0, out=out) if out is not None else (z > 0).astype(z.dtype)


class Identity(Activation):
    name = "identity"

    def fn(self, z: Any, out: Any = None) -> Any:
        return z

    def into(self, z: Any, out: Any) -> Any:
        out[...] = z  # a copy, so that σ′ written over z later leaves a as it was
        return out

    def prime(self, z: Any, a: Any = None, out: Any = None) -> Any:
        xp = get_array_module(z)
        if out is None:
            return xp.ones_like(z)
        out.fill(1)
        return out


class Exp(Activation):
    """e^z, the output of scikit-learn's Poisson regression (a rate, always > 0); σ′ = σ.
    For an output layer (`cost="poisson"`); it overflows to ∞ past z ≈ 88 in float32."""

    name = "exp"

    @np.errstate(over="ignore")
    def fn(self, z: Any, out: Any = None) -> Any:
        return get_array_module(z).exp(z, out=out)

    def into(self, z: Any, out: Any) -> Any:
        return get_array_module(z).exp(z, out=out)

    def prime(self, z: Any, a: Any = None, out: Any = None) -> Any:
        if a is None:
            return self.fn(z, out=out)
        if out is None:
            return a.copy()
        out[...] = a
        return out


class Softmax(Activation):
    """aⱼ = e^{zⱼ} / Σₖ e^{zₖ} over each column, shifted by the column's maximum.

    Softmax is not elementwise, so it has no σ′ for the Hadamard form of BP1; it is
    an output layer only, paired with the log-likelihood cost, whose δᴸ = a − y
    needs no σ′ (Nielsen, ch. 3). The network refuses any other use.
    """

    name = "softmax"

    def fn(self, z: Any, out: Any = None) -> Any:
        xp = get_array_module(z)
        e = xp.subtract(z, z.max(axis=0, keepdims=True), out=out)
        xp.exp(e, out=e)
        e /= e.sum(axis=0, keepdims=True)
        return e


_ACTIVATIONS = {cls.name: cls for cls in (Sigmoid, Tanh, ReLU, Identity, Exp, Softmax)}
HIDDEN = ("sigmoid", "tanh", "relu", "identity")


def get(name: str, *, argument: str = "activation") -> Activation:
    """The activation called `name`; `ValueError` naming the argument if unknown."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"{argument} must be one of {', '.join(map(repr, _ACTIVATIONS))}, got {name!r}")
    return _ACTIVATIONS[name]()


def hidden(name: str) -> Activation:
    """The activation of hidden layers called `name`: any elementwise one."""
    if name not in HIDDEN:
        hint = "; softmax is for the output layer: output_activation='softmax'" if name == "softmax" else ""
        raise ValueError(f"activation (of the hidden layers) must be one of {', '.join(map(repr, HIDDEN))}, got {name!r}{hint}")
    return _ACTIVATIONS[name]()
