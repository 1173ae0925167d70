"""PNG figures for the command line: learning curves and confusion matrices.

Needs matplotlib (`pip install matplotlib`; in a checkout `pip install -e '.[plot]'`); importing this module without it
raises `ImportError`, which the CLI turns into an install hint.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runs import History  # noqa: E402

__all__ = ["confusion_matrix", "learning_curves"]


def learning_curves(history: History, path: str | os.PathLike, *, title: str = "") -> None:
    """Training and validation cost, and validation accuracy, per epoch."""
    epochs = np.arange(1, len(history.train_cost) + 1)
    fig, (cost, accuracy) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    cost.plot(epochs, history.train_cost, marker="o", label="training")
    if history.val_cost:
        cost.plot(epochs, history.val_cost, marker="o", label="validation")
        accuracy.plot(epochs, np.array(history.val_accuracy) * 100, marker="o", color="C1")
    cost.set(xlabel="epoch", ylabel="mean cost", title="cost")
    cost.legend()
    accuracy.set(xlabel="epoch", ylabel="accuracy (%)", title="validation accuracy")
    for ax in (cost, accuracy):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_matrix(confusion: np.ndarray, path: str | os.PathLike, *, title: str = "") -> None:
    """A heat map of counts, true class by row and predicted class by column."""
    k = len(confusion)
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    image = ax.imshow(confusion, cmap="Blues")
    for i in range(k):
        for j in range(k):
            dark = confusion[i, j] > confusion.max() / 2
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(image, ax=ax)
    fig.savefig(path, dpi=100)
    plt.close(fig)
