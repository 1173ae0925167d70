"""Held-out data and early stopping: the carved validation split, stopping by "no
improvement in n epochs" with the best epoch's parameters kept, Nielsen's halving of η,
and their checks."""

import numpy as np
import pytest

import xpbp
from xpbp import draws, to_numpy
from xpbp.stopping import Watch


def blobs(n=200, seed=0, noise=2.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    return (rng.standard_normal((n, 4)) * noise + y[:, None]).astype(np.float64), y


def host(net):
    return [to_numpy(p).copy() for p in net.weights + net.biases]


def test_the_split_is_disjoint_stratified_and_the_same_for_a_seed():
    labels = np.repeat([0, 1, 2], [100, 50, 10])
    train, held = draws.split(7, 160, 0.2, labels)
    assert np.intersect1d(train, held).size == 0 and np.array_equal(np.union1d(train, held), np.arange(160))
    assert [np.sum(labels[held] == c) for c in range(3)] == [20, 10, 2]
    assert len(held) == draws.held_out(160, 0.2, labels)
    again = draws.split(7, 160, 0.2, labels)
    assert np.array_equal(train, again[0]) and np.array_equal(held, again[1])
    assert not np.array_equal(held, draws.split(8, 160, 0.2, labels)[1])
    # unstratified (a regression): f·N of the rows; a class of one keeps its only example
    assert len(draws.split(7, 160, 0.25)[1]) == 40
    assert 3 not in np.repeat([0, 3], [9, 1])[draws.split(1, 10, 0.5, np.repeat([0, 3], [9, 1]))[1]]


def test_a_validation_fraction_validates_on_the_held_out_rows_and_trains_on_the_rest(device):
    X, y = blobs()
    net = xpbp.Network([4, 8, 3], device=device, dtype="float64", seed=4)
    history = net.fit(X, y, epochs=3, batch_size=10, eta=0.5, validation_fraction=0.25, progress=False)
    train, held = draws.split(4, 200, 0.25, y)
    assert history.val_accuracy[-1] == pytest.approx(net.evaluate(X[held], y[held]))
    assert history.val_cost[-1] == pytest.approx(net.metrics(X[held], y[held])["cost"], rel=1e-12)
    # what it trained on is the other rows, in the order drawn over them
    other = xpbp.Network([4, 8, 3], device=device, dtype="float64", seed=4)
    manual = xpbp.Network([4, 8, 3], device=device, dtype="float64", seed=4)
    for e in range(3):
        order = draws.order(4, e, len(train))
        manual.fit(X[train][order], y[train][order], epochs=1, batch_size=10, eta=0.5, shuffle=False, progress=False)
    other.fit(X, y, epochs=3, batch_size=10, eta=0.5, validation_fraction=0.25, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(host(other), host(manual)))
    assert all(np.array_equal(a, b) for a, b in zip(host(other), host(net)))


def test_early_stopping_keeps_the_best_epochs_parameters(device):
    """Noisy data and a large network overfit: the run stops early, history.best_epoch is the
    best validation accuracy's first epoch, and the parameters are that epoch's: those of a
    run of that many epochs."""
    X, y = blobs(n=150, noise=3.0)
    kwargs = dict(batch_size=5, eta=2.0, validation_fraction=0.3, progress=False)
    net = xpbp.Network([4, 40, 3], device=device, dtype="float64", seed=2)
    history = net.fit(X, y, epochs=60, early_stopping=4, **kwargs)
    best = history.best_epoch
    assert history.stopped_early and len(history.val_accuracy) == best + 4 < 60
    assert best == int(np.argmax(history.val_accuracy)) + 1
    assert max(history.val_accuracy[best:]) <= history.val_accuracy[best - 1]
    short = xpbp.Network([4, 40, 3], device=device, dtype="float64", seed=2)
    short.fit(X, y, epochs=best, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(host(net), host(short)))
    held = draws.split(2, 150, 0.3, y)[1]
    assert net.evaluate(X[held], y[held]) == pytest.approx(history.val_accuracy[best - 1])


def test_early_stopping_on_the_cost_and_with_a_tolerance():
    X, y = blobs(n=150, noise=3.0)
    kwargs = dict(batch_size=5, eta=2.0, validation_fraction=0.3, epochs=60, progress=False)
    by_cost = xpbp.Network([4, 40, 3], dtype="float64", device="cpu", seed=2).fit(X, y, early_stopping=3, monitor="val_cost", **kwargs)
    assert by_cost.best_epoch == int(np.argmin(by_cost.val_cost)) + 1
    # with a tolerance as large as the whole range, nothing after the first epoch improves
    lax = xpbp.Network([4, 40, 3], dtype="float64", device="cpu", seed=2).fit(X, y, early_stopping=3, tol=1.0, **kwargs)
    assert len(lax.val_accuracy) == 4 and lax.best_epoch == int(np.argmax(lax.val_accuracy)) + 1


def test_without_early_stopping_best_epoch_is_none_and_every_epoch_runs():
    X, y = blobs()
    history = xpbp.Network([4, 8, 3], device="cpu", seed=1).fit(X, y, epochs=3, validation_fraction=0.2, progress=False)
    assert history.best_epoch is None and not history.stopped_early and len(history.val_cost) == 3


def test_halving_eta_follows_nielsen():
    """halve_eta=1 with a tolerance nothing clears: epochs 1 and 2 at η, then each epoch at
    half the last, until η is 1/128 of where it started (after epoch 8): the same as fits of
    one epoch at those rates. The network kept is the best epoch's, as the CLI says."""
    X, y = blobs(n=60)
    net = xpbp.Network([4, 6, 3], device="cpu", dtype="float64", seed=3)
    history = net.fit(X, y, epochs=20, batch_size=10, eta=1.0, halve_eta=1, tol=10.0, validation_data=(X, y), progress=False)
    best = history.best_epoch
    assert len(history.train_cost) == 8 and history.stopped_early and best == int(np.argmax(history.val_accuracy)) + 1 < 8
    manual = xpbp.Network([4, 6, 3], device="cpu", dtype="float64", seed=3)
    rates = (1.0, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625)
    for eta in rates[:best]:
        manual.fit(X, y, epochs=1, batch_size=10, eta=eta, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(host(net), host(manual)))


def test_the_watch_counts_as_scikit_learn_does():
    """The count of epochs without improvement restarts only on an improvement by more than
    tol; the best score and epoch follow any improvement; NaN never improves."""
    w = Watch()
    for epoch, score in enumerate([0.5, 0.55, 0.56, float("nan"), 0.70], start=1):
        w = w.seen(epoch, score, higher=True, tol=0.02, halve_after=0)
    assert (w.best, w.best_epoch, w.since) == (0.70, 5, 0)
    w = Watch().seen(1, 0.5, higher=True, tol=0.02, halve_after=0).seen(2, 0.51, higher=True, tol=0.02, halve_after=0)
    assert (w.best, w.best_epoch, w.since) == (0.51, 2, 1) and not w.stops(2, 0) and w.seen(3, 0.4, higher=True, tol=0.02,
                                                                                          halve_after=0).stops(2, 0)
    lower = Watch().seen(1, 2.0, higher=False, tol=0.0, halve_after=0).seen(2, 1.0, higher=False, tol=0.0, halve_after=0)
    assert (lower.best, lower.best_epoch) == (1.0, 2)


@pytest.mark.parametrize("kwargs, message", [
    ({"early_stopping": 3}, r"early_stopping watches a validation score: give validation_data=\(X_val, y_val\) or validation_fraction=0.1"),
    ({"halve_eta": 2}, "halve_eta watches a validation score"),
    ({"early_stopping": 0.5, "validation_fraction": 0.2}, "early_stopping must be a positive integer"),
    ({"validation_fraction": 1.0}, r"validation_fraction must be \[0.0, 1.0\)"),
    ({"validation_fraction": 0.2, "validation_data": "both"}, "give validation_data or validation_fraction, not both"),
    ({"early_stopping": 2, "validation_fraction": 0.2, "monitor": "val_r2"},
     "monitor must be one of 'val_cost', 'val_accuracy' for a classification, got 'val_r2'"),
    ({"monitor": "val_cost", "validation_fraction": 0.2}, "monitor='val_cost' is the score early_stopping and halve_eta watch"),
    ({"tol": -1.0, "early_stopping": 2, "validation_fraction": 0.2}, "tol must be >= 0"),
    ({"validation_fraction": 0.5, "batch_size": 150}, r"batch_size must be at most the number of examples \(99 after the 101 held out for validation\), got 150"),
])
def test_bad_settings_are_refused_before_any_work(kwargs, message):
    X, y = blobs()
    if kwargs.get("validation_data") == "both":
        kwargs = {**kwargs, "validation_data": (X, y)}
    net = xpbp.Network([4, 8, 3], device="cpu", seed=1)
    before = host(net)
    with pytest.raises(ValueError, match=message):
        net.fit(X, y, epochs=2, progress=False, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(before, host(net)))
