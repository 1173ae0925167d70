"""Watching a validation score from epoch to epoch: early stopping by "no improvement in
n epochs" and Nielsen's schedule that halves η when the score stops improving (ch. 3).

A `Watch` is the state of that watching after an epoch, a small frozen record:
the best score and its epoch, how many epochs have passed since the score last
improved by more than the tolerance, and how often η was halved. A checkpoint saves it,
so that a resumed run stops, and halves, where an unbroken one would.

An epoch *improves* when its score beats the best by more than `tol` (higher for an
accuracy or R², lower for a cost or RMSE); the best score and epoch follow every new
best, however small (as scikit-learn's MLP counts them). A NaN score never improves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["HALVINGS", "HIGHER", "LOWER", "Watch"]

HIGHER = ("val_accuracy", "val_r2")  # scores where higher is better
LOWER = ("val_cost", "val_rmse", "train_cost")
# Nielsen: halve η each time, until it is 1/128 of where it started; then stop.
HALVINGS = 7


@dataclass(frozen=True)
class Watch:
    """The state after `best_epoch` … epochs; see the module's docstring."""

    best: float = math.nan  # the best score so far (NaN before the first finite one)
    best_epoch: int = 0  # the epoch of the run that scored it (1-based; 0: none yet)
    since: int = 0  # epochs since the score last improved by more than tol (or since η was halved)
    halvings: int = 0  # how often η has been halved

    def seen(self, epoch: int, score: float, *, higher: bool, tol: float, halve_after: int) -> Watch:
        """The state after `epoch` scored `score`; η is halved (and the count of
        epochs without improvement starts again) after `halve_after` such epochs."""
        sign = 1.0 if higher else -1.0
        first = math.isnan(self.best)
        improved = not math.isnan(score) and (first or sign * (score - self.best) > tol)
        better = not math.isnan(score) and (first or sign * (score - self.best) > 0)
        watch = replace(
            self,
            best=score if better else self.best,
            best_epoch=epoch if better else self.best_epoch,
            since=0 if improved else self.since + 1,
        )
        if halve_after and watch.since >= halve_after:
            watch = replace(watch, since=0, halvings=watch.halvings + 1)
        return watch

    def stops(self, patience: int, halve_after: int) -> bool:
        """Whether training ends here: `patience` epochs without improvement (0: never),
        or η halved `HALVINGS` times."""
        return bool(patience and self.since >= patience) or bool(halve_after and self.halvings >= HALVINGS)

    @property
    def eta_factor(self) -> float:
        """What the halvings so far multiply η by."""
        return 0.5**self.halvings
