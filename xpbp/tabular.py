"""The command line on a user's own data file (`--data`): the splits, the scaling, the
network's shape and defaults, and `evaluate`, `predict` and `export` on files.

`xpbp train --data PATH` reads the file (`xpbp.tables`), holds out a test split
(`--test PATH`, or `--test-fraction F` of the rows, stratified for classes, drawn
from the seed), fits the scaling (`--scale`, standard by default) on the training
rows only, and shapes the network from the data: as many inputs as features; for
classes, a softmax output of one neuron per class under the log-likelihood cost (one
sigmoid neuron under the cross-entropy for two classes); for a regression, one identity
output under scikit-learn's squared error, its targets standardised on the training
rows. Options left unset take scikit-learn `MLPClassifier`'s defaults (hidden
layer 100, ReLU, Adam at η 0.001, mini-batches of min(200, N) for N training rows (those left after
`--validation-fraction`'s), 200 epochs).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import draws, files, scaling, tables
from .network import Network

__all__ = ["DEFAULTS", "Own", "check", "classes", "defaults", "load", "predictions", "scalings", "write_csv"]

# What an option left unset means on own data (scikit-learn MLPClassifier's defaults).
DEFAULTS = dict(hidden=[100], activation="relu", optimizer="adam", epochs=200, batch_size=200)
_TEST_FRACTION = 0.2
_CHUNK = 65536  # rows predicted and written at a time


@dataclass(frozen=True)
class Own:
    """A file's rows split into training and test rows, with what was read about them."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    table: tables.Table  # the training file's (its X and y are the rows before the split)
    test_from: str  # where the test rows come from, in words


def check(args: argparse.Namespace) -> None:
    """The own-data options, checked before any file is read."""
    if args.dataset is not None:
        raise ValueError("give either --dataset (a built-in data set) or --data (a file of your own), not both")
    for option, path in (("--data", args.data), ("--test", args.test)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{option} {path}: no such file")
    if args.test is not None and args.test_fraction is not None:
        raise ValueError("give either --test (a file of test rows) or --test-fraction (a share of --data's rows), not both")
    if args.test_fraction is not None and not 0 < args.test_fraction < 1:
        raise ValueError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    if args.shift or args.mirror:
        raise ValueError("--shift and --mirror move pixels of 28×28 images: they are for the MNIST-family data sets")


def load(args: argparse.Namespace) -> Own:
    """The training and test rows of `--data` (and `--test`)."""
    table = tables.read(args.data, target=args.target, task=args.task)
    if args.test is not None:
        test = tables.read(args.test, target=args.target, task=table.task, classes=table.classes)
        if test.X.shape[1] != table.X.shape[1]:
            raise ValueError(f"--test {args.test} has {test.X.shape[1]} features, --data {args.data} {table.X.shape[1]}")
        assert test.y is not None
        return Own(table.X, _y(table), test.X, test.y, table, f"{args.test}")
    fraction = _TEST_FRACTION if args.test_fraction is None else args.test_fraction
    labels = table.y if table.task == "classification" else None
    seed = 0 if args.seed is None else args.seed
    train, held = draws.split(seed, len(table.X), fraction, labels, stream=draws.TEST)
    if len(train) < 2:
        raise ValueError(f"{args.data} has {len(table.X)} rows: too few to hold out a test split and train on the rest")
    y = _y(table)
    return Own(table.X[train], y[train], table.X[held], y[held], table, f"{len(held)} rows held out of {args.data}")


def _y(table: tables.Table) -> np.ndarray:
    if table.y is None:
        raise ValueError("the file has no target column")
    return table.y


def defaults(args: argparse.Namespace, own: Own) -> None:
    """Fill in `args`' unset network and training options for this data (in place)."""
    table = own.table
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value if key != "batch_size" else min(int(value), _fitted_rows(args, own)))  # type: ignore[call-overload]
    if args.sizes is not None:
        raise ValueError(
            "on a file of your own, give the hidden layers with --hidden N,N,...: the data sets the input and output widths"
        )
    if table.task == "regression":
        width, output, cost = 1, "identity", "squared_error"
    else:
        k = len(table.classes or ())
        if k < 2:
            raise ValueError(
                f"{args.data}'s target holds one class only ({(table.classes or ('?',))[0]!r}): nothing to tell apart"
            )
        width, output, cost = (1, "sigmoid", "cross_entropy") if k == 2 else (k, "softmax", "log_likelihood")
    args.sizes = [own.X.shape[1], *args.hidden, width]
    args.output_activation = args.output_activation or output
    args.cost = args.cost or cost


def _fitted_rows(args: argparse.Namespace, own: Own) -> int:
    """How many training rows `fit` steps over: those left after `--validation-fraction`'s."""
    if not args.validation_fraction:
        return len(own.X)
    labels = own.y if own.table.task == "classification" else None
    return len(own.X) - draws.held_out(len(own.X), args.validation_fraction, labels)


def scalings(args: argparse.Namespace, own: Own) -> tuple[scaling.Scaling | None, scaling.Scaling | None]:
    """The input scaling (`--scale`, fitted on the training rows) and a regression's target scaling."""
    inputs = scaling.fit(own.X, args.scale or "standard")
    if own.table.task != "regression":
        return inputs, None
    return inputs, scaling.fit(own.y.reshape(-1, 1), "standard")


def classes(net: Network) -> tuple[str, ...] | None:
    """The labels of a classifier's classes: those it was trained on, or for a network
    trained on class indices, the indices 0, 1, … themselves (None for a regression)."""
    if net.task == "regression":
        return None
    return net.classes or tuple(str(k) for k in range(max(net.sizes[-1], 2)))


def predictions(net: Network, X: np.ndarray, proba: bool) -> tuple[list[str], Any]:
    """The header and an iterator of row blocks of `xpbp predict`'s output: a class's
    label (and with `proba`, each class's probability), or a regression's outputs."""
    if net.task == "regression":
        names = ["prediction"] if net.sizes[-1] == 1 else [f"prediction_{j}" for j in range(net.sizes[-1])]
    else:
        labels = classes(net) or ()
        names = ["prediction"] + ([f"p_{c}" for c in labels] if proba else [])

    def blocks() -> Any:
        for k in range(0, len(X), _CHUNK):
            part = X[k : k + _CHUNK]
            if net.task == "regression":
                yield [[repr(float(v)) for v in row] for row in net.predict(part).reshape(len(part), -1)]
                continue
            predicted = np.asarray(labels)[net.predict(part)]
            if proba:
                p = net.predict_proba(part)
                yield [[c, *(f"{v:.6g}" for v in row)] for c, row in zip(predicted, p)]
            else:
                yield [[c] for c in predicted]

    return names, blocks()


def write_csv(path: str, names: list[str], blocks: Any) -> int:
    """Write the header and the row blocks to `path` atomically; the number of rows."""
    n = 0
    with files.replacing(path) as f:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        out = csv.writer(text)
        out.writerow(names)
        for rows in blocks:
            out.writerows(rows)
            n += len(rows)
        text.flush()
        text.detach()
    return n
