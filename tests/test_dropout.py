"""Dropout: the masks (their keep rate, their keys, the same on every device), the gradient
of the thinned network against a per-example reference, and training with it."""

import numpy as np
import pytest
from references import dropout_backprop, nielsen_backprop

import xpbp
from xpbp import backend, draws, to_device, to_numpy
from xpbp.activations import get
from xpbp.costs import get as cost
from xpbp.workspace import Workspace


def masks(device, p, rows, widths=(7, 5), seed=3, epoch=0, dtype=np.float64):
    with backend.using(backend.canonical(device)):
        dropout = draws.Dropout(p, list(widths), backend.canonical(device), np.dtype(dtype))
        xp = backend.resolve(device)
        out = [xp.empty((n, len(rows)), dtype=dtype) for n in widths]
        found = dropout.masks(dropout.keys(seed, epoch), to_device(np.asarray(rows), backend.canonical(device)), out)
        return [to_numpy(m) for m in found]


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_masks_keep_one_minus_p_within_a_binomial_bound(p):
    rows = np.arange(4000)
    found = masks("cpu", p, rows, widths=(50, 30))
    for m in found:
        kept = m > 0
        assert set(np.unique(m)) == {0.0, 1 / (1 - p)}  # inverted dropout: kept activations scaled by 1/(1 - p)
        sigma = np.sqrt(p * (1 - p) / m.size)
        assert abs(kept.mean() - (1 - p)) < 5 * sigma
        # no neuron and no example is favoured: each row's and column's rate is binomial too
        for axis, k in ((1, m.shape[1]), (0, m.shape[0])):
            assert np.all(np.abs(kept.mean(axis=axis) - (1 - p)) < 6 * np.sqrt(p * (1 - p) / k))


def test_masks_are_keyed_by_the_examples_row_not_its_place_in_the_batch(device):
    """The same example gets the same mask in any mini-batch, process and device; another
    epoch, seed or layer gets another."""
    all_rows = masks(device, 0.5, np.arange(20))
    some = masks(device, 0.5, np.array([13, 2, 7]))
    for whole, part in zip(all_rows, some):
        assert np.array_equal(whole[:, [13, 2, 7]], part)
    assert all(np.array_equal(a, b) for a, b in zip(all_rows, masks("cpu", 0.5, np.arange(20))))
    for other in (masks(device, 0.5, np.arange(20), epoch=1), masks(device, 0.5, np.arange(20), seed=4)):
        assert not np.array_equal(other[0], all_rows[0])
    assert not np.array_equal(all_rows[0][:5], all_rows[1])


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "identity"])
@pytest.mark.parametrize("output, cost_name", [("sigmoid", "quadratic"), ("softmax", "log_likelihood")])
def test_the_thinned_gradient_matches_a_per_example_reference(device, hidden, output, cost_name, rng):
    sizes, m = [4, 7, 5, 3], 9
    net = xpbp.Network(sizes, activation=hidden, output_activation=output, cost=cost_name, dtype="float64", device=device, seed=2)
    x = rng.standard_normal((4, m))
    y = np.eye(3)[:, rng.integers(3, size=m)] if cost_name == "log_likelihood" else rng.uniform(0.1, 0.9, (3, m))
    mask = masks("cpu", 0.4, np.arange(m))
    w, b = [to_numpy(p) for p in net.weights], [to_numpy(p) for p in net.biases]
    want_b, want_w = dropout_backprop(w, b, [hidden, hidden, output], cost_name, x, y, mask)
    sigmas = [get(hidden), get(hidden), get(output)]
    with backend.using(net.device):
        work = Workspace(sizes, sigmas, cost(cost_name), net.xp, net.dtype)
        buffers = work.masks(m)
        for buffer, host in zip(buffers, mask):
            buffer[...] = to_device(host, net.device)
        work.backprop(net.weights, net.biases, to_device(x, net.device), to_device(y, net.device), 1.0 / m, buffers)
        got_b, got_w = [to_numpy(g) for g in work.nabla_b], [to_numpy(g) for g in work.nabla_w]
    for got, want in zip(got_b + got_w, want_b + want_w):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    # the mask matters: without it the reference is another gradient
    plain_b, _ = nielsen_backprop(w, b, [hidden, hidden, output], cost_name, x, y)
    assert not np.allclose(plain_b[0], got_b[0])


def test_masks_of_ones_give_the_plain_gradient_bit_for_bit(device, rng):
    sizes, m = [4, 6, 3], 5
    net = xpbp.Network(sizes, activation="sigmoid", dtype="float64", device=device, seed=1)
    x, y = rng.standard_normal((4, m)), rng.uniform(0, 1, (3, m))
    grads = []
    with backend.using(net.device):
        for ones in (False, True):
            work = Workspace(sizes, [get("sigmoid")] * 2, cost("quadratic"), net.xp, net.dtype)
            buffers = work.masks(m) if ones else None
            if ones:
                buffers[0].fill(1.0)
            work.backprop(net.weights, net.biases, to_device(x, net.device), to_device(y, net.device), 0.5, buffers)
            grads.append(to_numpy(work.grad).copy())
    assert np.array_equal(*grads)


def blobs(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    return (rng.standard_normal((n, 4)) + y[:, None]).astype(np.float32), y


def host(net):
    return [to_numpy(p).copy() for p in net.weights + net.biases]


def test_dropout_zero_is_no_dropout_and_dropout_changes_the_training(device):
    X, y = blobs()
    runs = {}
    for p in (None, 0.0, 0.3):
        net = xpbp.Network([4, 8, 6, 3], device=device, seed=5)
        net.fit(X, y, epochs=3, batch_size=8, eta=0.5, **({} if p is None else {"dropout": p}), progress=False)
        runs[p] = host(net)
    assert all(np.array_equal(a, b) for a, b in zip(runs[None], runs[0.0]))
    assert not np.allclose(runs[None][0], runs[0.3][0])


def test_dropout_trains_alike_on_every_device_and_unshuffled(device):
    """The masks and the order come from the host and from integer hashes, not from the
    device's generator (the strict device's is not NumPy's), so every device trains the
    same network from a seed, to rounding (here, bit for bit: the strict device runs NumPy)."""
    X, y = blobs()
    for shuffle in (True, False):
        found = []
        for where in ("cpu", device):
            net = xpbp.Network([4, 8, 6, 3], dtype="float64", device=where, seed=5)
            net.fit(X, y, epochs=2, batch_size=8, eta=0.5, dropout=0.4, optimizer="adam", shuffle=shuffle, progress=False)
            found.append(host(net))
        for a, b in zip(*found):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_dropout_predicts_with_the_whole_network():
    """Inverted dropout: validation and prediction use every neuron, unscaled."""
    X, y = blobs()
    net = xpbp.Network([4, 8, 3], device="cpu", dtype="float64", seed=5)
    history = net.fit(X, y, epochs=2, batch_size=8, eta=0.5, dropout=0.5, validation_data=(X, y), progress=False)
    assert history.val_accuracy[-1] == pytest.approx(np.mean(net.predict(X) == y))
    assert history.val_cost[-1] == pytest.approx(net.cost(X.T, np.eye(3)[y].T), rel=1e-12)


@pytest.mark.parametrize("p", [-0.1, 1.0, float("nan")])
def test_a_dropout_outside_zero_to_one_is_refused(p):
    X, y = blobs()
    with pytest.raises(ValueError, match="dropout must be"):
        xpbp.Network([4, 8, 3], device="cpu", seed=5).fit(X, y, epochs=1, dropout=p, progress=False)
