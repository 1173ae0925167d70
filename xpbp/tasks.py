"""What a network's outputs mean: classes or quantities. Each task is one class that
turns the targets a user gives into the output layer's targets, decides predictions
from the outputs, and scores them.

- `Classification`: labels, or targets of one row per example. Several output
  neurons predict the most active one (argmax); a single output neuron predicts class 1
  where its activation is at least 0.5 and class 0 below (a binary classifier). Its
  score is the accuracy.
- `Regression`: continuous targets. Predictions are the outputs themselves; its
  scores are the root-mean-square error over every output and example (RMSE) and the
  coefficient of determination R² (each output's, averaged, as scikit-learn's
  `r2_score` does), never an accuracy.

`infer` tells which task targets are for, when the network was not told.

Scores are accumulated on the device as sums over blocks of examples (`totals`), so
that they cost no host transfer until the caller's one, and sums from several blocks
or ranks simply add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import backend, validation

__all__ = ["Classification", "MultiLabel", "Regression", "TASKS", "Targets", "Task", "get", "infer"]

_CLASSIFYING_OUTPUTS = ("sigmoid", "softmax")  # outputs in (0, 1), which a threshold or an argmax reads


@dataclass(frozen=True)
class Targets:
    """Targets on the device: `Y` `(n, n_out)` in the network's dtype, what the output
    layer is trained towards; `truth` `(n,)`, the labels a classifier is scored
    against (None for a regression, scored against Y); and for a regression `origin`,
    the first example's targets `(n_out, 1)`, which its sums are taken relative to. With
    sample weights (training data only), `weight` `(n,)` holds them."""

    Y: Any
    truth: Any = None
    origin: Any = None
    weight: Any = None

    def part(self, rows: slice) -> Targets:
        """The targets of `rows` (relative to the same origin)."""
        truth, weight = (None if a is None else a[rows] for a in (self.truth, self.weight))
        return Targets(self.Y[rows], truth, self.origin, weight)


class Task:
    name: ClassVar[str] = ""
    scores: ClassVar[tuple[str, ...]] = ()  # the names of what `score` gives
    headline: ClassVar[str] = ""  # the score `Network.evaluate` returns

    def targets(self, y: Any, n: int, n_out: int, name: str, *, dtype: np.dtype, device: str) -> Targets:
        """`y` checked and brought to `device`, for `n` examples and `n_out` outputs."""
        raise NotImplementedError

    def decide(self, a: Any) -> Any:
        """Predictions from output activations `a` `(n_out, m)`, on the device."""
        raise NotImplementedError

    def totals(self, a: Any, targets: Targets) -> Any:
        """A 1-D array of sums over the examples whose outputs are the columns of `a` and
        whose targets are `targets`, on the device; `score` turns the sums over all
        examples into scores."""
        raise NotImplementedError

    def score(self, totals: list[float], n: int) -> dict[str, float]:
        raise NotImplementedError

    def width(self, n_out: int) -> int:
        """How many sums `totals` gives."""
        raise NotImplementedError

    def in_units(self, scale: Any) -> Task:
        """The task scoring outputs trained towards targets divided by `scale` (one per
        output) in the targets' own units; a classification's scores have none."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Classification(Task):
    name = "classification"
    scores = ("accuracy",)
    headline = "accuracy"

    def targets(self, y: Any, n: int, n_out: int, name: str, *, dtype: np.dtype, device: str) -> Targets:
        y = validation.real_array(y, name)
        if y.ndim == 2:
            return self._rows(y, n, n_out, name, dtype=dtype, device=device)
        if y.ndim != 1:
            raise ValueError(
                f"{name} must be class labels of shape ({n},) or targets of shape ({n}, {n_out}), got shape {y.shape}"
            )
        if y.shape[0] != n:
            raise ValueError(f"{name} has {y.shape[0]} labels but X has {n} examples")
        labels = validation.labels(y, name)
        classes = max(n_out, 2)
        source = backend.device_of(labels)
        with backend.using(source):  # the range, where y lives
            lo, hi = backend.to_numpy(backend.get_array_module(labels).stack([labels.min(), labels.max()])).tolist()
        if lo < 0 or hi >= classes:
            what = "1 output neuron (a binary classifier: labels 0 and 1)" if n_out == 1 else f"{n_out} output neurons"
            raise ValueError(f"{name} holds labels in [{lo}, {hi}], outside [0, {classes - 1}] for {what}")
        labels = backend.to_device(labels, device)
        with backend.using(device):
            xp = backend.get_array_module(labels)
            if n_out == 1:
                return Targets(labels.astype(dtype).reshape(n, 1), labels)
            Y = xp.zeros((n, n_out), dtype=dtype)
            Y[xp.arange(n), labels] = 1
        return Targets(Y, labels)

    def _rows(self, y: Any, n: int, n_out: int, name: str, *, dtype: np.dtype, device: str) -> Targets:
        if y.shape[1:] == (1,) and n_out > 1 and y.dtype.kind in "biu":
            raise ValueError(f"{name} has shape {y.shape}: class labels go in a 1-D array of shape ({n},), e.g. {name}.ravel()")
        Y = validation.matrix(y, name, n_out, dtype=dtype, device=device, columns=False)
        if Y.shape[0] != n:
            raise ValueError(f"{name} has {Y.shape[0]} rows but X has {n} examples")
        with backend.using(device):
            return Targets(Y, self.decide(Y.T))

    def decide(self, a: Any) -> Any:
        if a.shape[0] == 1:
            return (a[0] >= 0.5).astype(np.int64)  # one output: class 1 from 0.5 up
        return a.argmax(axis=0)

    def totals(self, a: Any, targets: Targets) -> Any:
        return (self.decide(a) == targets.truth).sum().reshape(1)

    def width(self, n_out: int) -> int:
        return 1

    def score(self, totals: list[float], n: int) -> dict[str, float]:
        return {"accuracy": totals[0] / n}


class MultiLabel(Task):
    """Several independent yes/no labels per example (targets of 0s and 1s, any number of
    them 1): each output neuron predicts 1 where it is at least 0.5. Its accuracy is the
    fraction of examples whose labels are all right (scikit-learn's subset accuracy)."""

    name = "multilabel"
    scores = ("accuracy",)
    headline = "accuracy"

    def targets(self, y: Any, n: int, n_out: int, name: str, *, dtype: np.dtype, device: str) -> Targets:
        y = validation.real_array(y, name)
        if y.ndim != 2:
            raise ValueError(f"{name} must be label indicators of shape ({n}, {n_out}), got shape {y.shape}")
        Y = validation.matrix(y, name, n_out, dtype=dtype, device=device, columns=False)
        if Y.shape[0] != n:
            raise ValueError(f"{name} has {Y.shape[0]} rows but X has {n} examples")
        with backend.using(device):
            if not bool(backend.to_numpy(((Y == 0) | (Y == 1)).all())):
                raise ValueError(f"{name} must hold label indicators, 0 or 1, for a multi-label classifier")
            return Targets(Y, Y.astype(np.int64))

    def decide(self, a: Any) -> Any:
        return (a >= 0.5).astype(np.int64)

    def totals(self, a: Any, targets: Targets) -> Any:
        return (self.decide(a) == targets.truth.T).all(axis=0).sum().reshape(1)

    def width(self, n_out: int) -> int:
        return 1

    def score(self, totals: list[float], n: int) -> dict[str, float]:
        return {"accuracy": totals[0] / n}


@dataclass(frozen=True)
class Regression(Task):
    """`units`: the scale of each output's targets (empty: the outputs' own units), by which
    `score` takes the RMSE in the targets' units when the network learns them scaled."""

    name: ClassVar[str] = "regression"
    scores: ClassVar[tuple[str, ...]] = ("rmse", "r2")
    headline: ClassVar[str] = "r2"
    units: tuple[float, ...] = ()

    def in_units(self, scale: Any) -> Task:
        return Regression(tuple(float(s) for s in np.asarray(scale).ravel()))

    def targets(self, y: Any, n: int, n_out: int, name: str, *, dtype: np.dtype, device: str) -> Targets:
        y = validation.real_array(y, name)
        if y.ndim == 1 and n_out == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2:
            shape = f"({n},) or ({n}, 1)" if n_out == 1 else f"({n}, {n_out})"
            raise ValueError(f"{name} must be regression targets of shape {shape}, got shape {y.shape}")
        Y = validation.matrix(y, name, n_out, dtype=dtype, device=device, columns=False)
        if Y.shape[0] != n:
            raise ValueError(f"{name} has {Y.shape[0]} rows but X has {n} examples")
        with backend.using(device):
            return Targets(Y, origin=Y[0].reshape(-1, 1).copy())

    def decide(self, a: Any) -> Any:
        return a

    def totals(self, a: Any, targets: Targets) -> Any:
        """Per output: the summed squared error, and the sum and the summed square of the
        targets less the origin's (a shift, so that R²'s spread loses no digits to a large
        mean)."""
        xp = backend.get_array_module(a)
        y = targets.Y.T
        error = a - y
        shifted = y - targets.origin
        return xp.concatenate([(error * error).sum(axis=1), shifted.sum(axis=1), (shifted * shifted).sum(axis=1)])

    def width(self, n_out: int) -> int:
        return 3 * n_out

    def score(self, totals: list[float], n: int) -> dict[str, float]:
        k = len(totals) // 3
        units = self.units or (1.0,) * k  # errors and squares scale by s², sums by s
        sse = [e * u * u for e, u in zip(totals[:k], units)]
        shifted = [t * u for t, u in zip(totals[k : 2 * k], units)]
        squares = [q * u * u for q, u in zip(totals[2 * k :], units)]
        r2 = []
        for e, s, q in zip(sse, shifted, squares):
            spread = max(q - s * s / n, 0.0)  # Σ(y − ȳ)²
            r2.append(1.0 - e / spread if spread > 0 else (1.0 if e == 0 else 0.0))
        return {"rmse": math.sqrt(sum(sse) / (n * k)), "r2": sum(r2) / k}


TASKS: dict[str, type[Task]] = {"classification": Classification, "multilabel": MultiLabel, "regression": Regression}


def get(name: Any) -> Task:
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"task must be one of {', '.join(map(repr, TASKS))} or None (inferred), got {name!r}")
    return TASKS[name]()


def infer(output_activation: str, n_out: int, y: Any = None) -> Task:
    """The task of targets `y` for a network with that output layer of `n_out` neurons:

    - 1-D integer or boolean labels: a classification;
    - 1-D floats: class labels for several outputs; for one, a classification when the
      output is a sigmoid's and every value is a whole number, else a regression;
    - 2-D targets: a classification when the outputs are a softmax's, or a sigmoid's
      and every target is 0 or 1 with a single 1 in each row (one-hot; for one output,
      0 or 1); a multi-label classification when those 0s and 1s are not one-hot; else a
      regression;
    - no targets: a classification for sigmoid and softmax outputs, else a regression.

    Looking at the values costs one transfer of a flag for device data."""
    classifying = output_activation in _CLASSIFYING_OUTPUTS
    if y is None:
        return Classification() if classifying else Regression()
    y = validation.real_array(y, "y")
    if y.ndim == 1 and (y.dtype.kind in "biu" or n_out > 1):
        return Classification()
    if y.ndim == 2 and y.shape[1] == 1 and n_out > 1 and y.dtype.kind in "biu":
        return Classification()  # labels in a column, which the classifier's targets then say to ravel
    if output_activation == "softmax" and y.ndim == 2:
        return Classification()
    if not classifying:
        return Regression()
    xp = backend.get_array_module(y)
    with backend.using(backend.device_of(y)):
        if y.ndim == 1:
            return Classification() if bool(backend.to_numpy((y == xp.floor(y)).all())) else Regression()
        flags = xp.stack([((y == 0) | (y == 1)).all(), (y.sum(axis=1) == 1).all()])
        zeros_and_ones, one_hot = backend.to_numpy(flags).tolist()
    if not zeros_and_ones:
        return Regression()
    return Classification() if one_hot or y.shape[1] == 1 else MultiLabel()
