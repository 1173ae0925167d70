"""Optimizers: how a gradient moves the parameters, each one small class.

θ (every w, then every b), the gradient and an optimizer's state buffers each lie in
one flat buffer laid out alike (`xpbp.workspace.Layout`), so an update is one
fused operation over the whole network: one kernel on a GPU, a few ufuncs in place on
the CPU, nothing allocated per step.

An optimizer owns its state: the buffers (`slots`, each laid out like θ), allocated by
`Optimizer.start` and kept from one `fit` to the next, so that an instance passed
to several fits goes on where the last one stopped (as a PyTorch optimizer does); a fresh
instance, or a name, starts from zero. Checkpoints save
`Optimizer.spec` (its settings) and `Optimizer.state` (its step count and
buffers).

The gradient an optimizer is handed is ∇C of the mini-batch's mean cost plus the
regularisation term (`xpbp.regularization`), times `Optimizer.scale`: η
for SGD, which folds the learning rate into backprop's last multiplication as Nielsen's
update does, and 1 for Adam, whose moments are of the plain gradient.

Adding an optimizer is one class here, and its name in `OPTIMIZERS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .backend import device_of, fuse, get_array_module
from .validation import real

__all__ = ["NAMES", "OPTIMIZERS", "SGD", "Adam", "Optimizer", "Spec", "get"]


@dataclass(frozen=True)
class Spec:
    """An optimizer's name and settings, by the names of its constructor's arguments:
    what a checkpoint records, and what a resumed run must match."""

    name: str
    settings: tuple[tuple[str, float | bool], ...] = ()

    def make(self) -> Optimizer:
        """A fresh optimizer of this spec."""
        return OPTIMIZERS[self.name](**dict(self.settings))

    def __str__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.settings)})"


class Optimizer:
    """The interface: `slots` (the names of the state buffers), `scale`,
    `update`; `start`, `state` and `restore` are shared."""

    name: ClassVar[str] = ""
    eta: ClassVar[float | None] = None  # fit's default η with this optimizer (None: the cost's, Nielsen's)

    def __init__(self) -> None:
        self.step = 0  # updates made, for Adam's bias correction
        self.buffers: list[Any] = []
        self.scratch: Any = None
        self._started = False

    @property
    def slots(self) -> tuple[str, ...]:
        return ()

    @property
    def scratch_needed(self) -> bool:
        """Whether the update needs a θ-sized work buffer besides its state."""
        return False

    def spec(self) -> Spec:
        raise NotImplementedError

    def scale(self, eta: float) -> float:
        """The factor the gradient handed to `update` carries."""
        raise NotImplementedError

    def update(self, theta: Any, grad: Any, eta: float) -> None:
        """One step on θ, in place, from `grad` (the gradient times `scale`)."""
        raise NotImplementedError

    def start(self, theta: Any) -> None:
        """Go on from the state buffers, when there are some that fit `theta` (its size,
        dtype and device); else allocate zero ones laid out like it (on its device, which
        must be current) and count the steps from 0."""
        if self._fits(theta):
            return
        xp = get_array_module(theta)
        self.buffers = [xp.zeros_like(theta) for _ in self.slots]
        self.scratch = xp.empty_like(theta) if self.scratch_needed else None
        self.step = 0
        self._started = True

    def _fits(self, theta: Any) -> bool:
        if not self._started:
            return False
        ours = [*self.buffers, *([self.scratch] if self.scratch is not None else [])]
        return all(b.shape == theta.shape and b.dtype == theta.dtype and device_of(b) == device_of(theta) for b in ours)

    def state(self) -> tuple[int, list[Any]]:
        """The step count and the state buffers (on the device), in `slots` order."""
        return self.step, self.buffers

    def restore(self, step: int, buffers: list[Any]) -> None:
        """Take a step count and buffers (host or device arrays, in `slots` order)."""
        for target, value in zip(self.buffers, buffers):
            target[...] = value
        self.step = step

    def __repr__(self) -> str:
        return str(self.spec())


@fuse
def _momentum(xp: Any, grad: Any, mu: Any, theta: Any, v: Any) -> None:
    """v ← μv − η∇C, then θ ← θ + v (`grad` holds η∇C)."""
    v *= mu
    v -= grad
    theta += v


@fuse
def _nesterov(xp: Any, grad: Any, mu: Any, theta: Any, v: Any, s: Any) -> None:
    """v ← μv − η∇C, then θ ← θ + μv − η∇C (`grad` holds η∇C; `s` is scratch)."""
    v *= mu
    v -= grad
    xp.multiply(v, mu, out=s)
    s -= grad
    theta += s


class SGD(Optimizer):
    """Stochastic gradient descent with heavy-ball momentum μ: v ← μv − η∇C, θ ← θ + v
    (with μ = 0, Nielsen's θ ← θ − η∇C, and no buffer at all).

    `nesterov=True`: Nesterov's momentum as Sutskever et al. (2013) write it for SGD and
    `torch.optim.SGD(nesterov=True)` computes it, θ ← θ + μv − η∇C after the velocity's
    update (the gradient is taken at θ, not at the look-ahead point).
    """

    name = "sgd"

    def __init__(self, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__()
        self.momentum = real(momentum, "momentum", 0.0, 1.0)  # 1 allowed, as scikit-learn allows it
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("Nesterov momentum needs a momentum > 0, e.g. SGD(momentum=0.9, nesterov=True)")
        self.nesterov = bool(nesterov)

    @property
    def scratch_needed(self) -> bool:
        return self.nesterov

    @property
    def slots(self) -> tuple[str, ...]:
        return ("velocity",) if self.momentum else ()

    def spec(self) -> Spec:
        return Spec(self.name, (("momentum", self.momentum), ("nesterov", self.nesterov)))

    def scale(self, eta: float) -> float:
        return eta

    def update(self, theta: Any, grad: Any, eta: float) -> None:
        self.step += 1
        if not self.momentum:
            theta -= grad  # θ ← θ − η∇C
            return
        mu = theta.dtype.type(self.momentum)
        if self.nesterov:
            _nesterov(grad, mu, theta, self.buffers[0], self.scratch)
        else:
            _momentum(grad, mu, theta, self.buffers[0])  # v ← μv − η∇C, θ ← θ + v


@fuse
def _adam(xp: Any, g: Any, theta: Any, m: Any, v: Any, s: Any, b1: Any, b2: Any, root: Any, eps: Any, rate: Any) -> None:
    """m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², θ ← θ − rate · m / (√v / root + ε)."""
    m *= b1
    xp.multiply(g, 1 - b1, out=s)
    m += s
    v *= b2
    xp.multiply(g, g, out=s)
    s *= 1 - b2
    v += s
    xp.sqrt(v, out=s)
    s /= root
    s += eps
    xp.divide(m, s, out=s)
    s *= rate
    theta -= s


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1), as `torch.optim.Adam` computes it: with
    g the gradient and t the step, m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g²,
    θ ← θ − η m̂ / (√v̂ + ε), where m̂ = m/(1 − β₁ᵗ) and v̂ = v/(1 − β₂ᵗ).

    `efficient=True`: the paper's "more efficient" order of computation (section 2),
    as scikit-learn's MLP computes it: ηₜ = η √(1 − β₂ᵗ)/(1 − β₁ᵗ), θ ← θ − ηₜ m / (√v + ε)
    (the same but for where ε enters).
    """

    name = "adam"
    eta = 0.001  # α of Kingma & Ba, and the default of PyTorch, Keras and scikit-learn

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, efficient: bool = False) -> None:
        super().__init__()
        self.beta1 = real(beta1, "beta1", 0.0, 1.0, high_open=True)
        self.beta2 = real(beta2, "beta2", 0.0, 1.0, high_open=True)
        self.eps = real(eps, "eps", 0.0)
        if not isinstance(efficient, (bool, np.bool_)):
            raise TypeError(f"efficient must be True or False, got {efficient!r}")
        self.efficient = bool(efficient)

    @property
    def slots(self) -> tuple[str, ...]:
        return ("m", "v")

    @property
    def scratch_needed(self) -> bool:
        return True

    def spec(self) -> Spec:
        return Spec(self.name, (("beta1", self.beta1), ("beta2", self.beta2), ("eps", self.eps), ("efficient", self.efficient)))

    def scale(self, eta: float) -> float:
        return 1.0

    def update(self, theta: Any, grad: Any, eta: float) -> None:
        self.step += 1
        t, f = self.step, theta.dtype.type
        first, second = 1.0 - self.beta1**t, math.sqrt(1.0 - self.beta2**t)  # the bias corrections
        root, rate = (1.0, eta * second / first) if self.efficient else (second, eta / first)
        m, v = self.buffers
        _adam(grad, theta, m, v, self.scratch, f(self.beta1), f(self.beta2), f(root), f(self.eps), f(rate))


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam}
NAMES = (*OPTIMIZERS, "nesterov")  # what `fit` and the command line take by name


def get(optimizer: Any, momentum: float) -> Optimizer:
    """The optimizer `fit` was given: an instance as it is, or a name (`NAMES`), made
    with its defaults: `"sgd"` with `fit`'s momentum, `"nesterov"` SGD with Nesterov
    momentum of `fit`'s momentum; None is `"sgd"`."""
    if isinstance(optimizer, Optimizer):
        if momentum:
            raise ValueError(
                f"momentum={momentum!r} was given beside an optimizer instance; give it to the optimizer, e.g. SGD(momentum=0.9)"
            )
        return optimizer
    if optimizer is None or optimizer == "sgd":
        return SGD(momentum)
    if optimizer == "nesterov":
        if not momentum:
            raise ValueError("optimizer='nesterov' needs a momentum > 0, e.g. momentum=0.9")
        return SGD(momentum, nesterov=True)
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        if momentum:
            raise ValueError(
                f"momentum={momentum!r} is SGD's; {optimizer} takes its own settings, e.g. {OPTIMIZERS[optimizer].__name__}(...)"
            )
        return OPTIMIZERS[optimizer]()
    names = ", ".join(map(repr, NAMES))
    raise ValueError(f"optimizer must be one of {names} or an xpbp.optimizers.Optimizer, got {optimizer!r}")
