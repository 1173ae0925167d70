"""fit: the update rule, reproducibility, dtypes, and learning on real digits."""

import contextlib

import numpy as np
import pytest

import xpbp
from xpbp import datasets, draws, threads, to_numpy


def blobs(rng, n=200, classes=3, dim=4):
    """A small fixed problem: Gaussian clusters, one per class."""
    centres = rng.standard_normal((classes, dim)) * 3
    y = rng.integers(classes, size=n)
    return (centres[y] + rng.standard_normal((n, dim))).astype(np.float32), y


def weights(net):
    """A host copy of the parameters (to_numpy does not copy arrays already on the host)."""
    return [to_numpy(p).copy() for p in net.weights + net.biases]


def test_cost_falls_and_accuracy_rises(device, rng):
    X, y = blobs(rng)
    net = xpbp.Network([4, 8, 3], device=device, seed=3)
    before = net.evaluate(X, y)
    history = net.fit(X, y, epochs=15, batch_size=10, eta=1.0, validation_data=(X, y), progress=False)
    assert len(history.train_cost) == len(history.val_cost) == len(history.val_accuracy) == 15
    assert history.train_cost[-1] < 0.5 * history.train_cost[0]
    assert history.val_accuracy[-1] > max(before, 0.9)
    assert net.evaluate(X, y) == pytest.approx(history.val_accuracy[-1])
    assert np.mean(net.predict(X) == y) == pytest.approx(history.val_accuracy[-1])


def test_same_seed_gives_bit_identical_weights(device, rng):
    X, y = blobs(rng)
    runs = []
    for _ in range(2):
        net = xpbp.Network([4, 8, 3], device=device, seed=7)
        net.fit(X, y, epochs=3, batch_size=16, eta=0.5, lmbda=0.1, momentum=0.5, progress=False)
        runs.append(weights(net))
    for a, b in zip(*runs):
        assert np.array_equal(a, b)
    other = xpbp.Network([4, 8, 3], device=device, seed=8)
    assert not np.array_equal(weights(other)[0], runs[0][0])


def test_parameters_replaced_between_fits_are_the_ones_trained(device, rng):
    """fit trains every w and b as views of one buffer; an array put in their place
    (rather than written into) must be taken into that buffer, not silently ignored."""
    X, y = blobs(rng)
    nets = [xpbp.Network([4, 8, 3], device=device, seed=5) for _ in range(2)]
    for net in nets:
        net.fit(X, y, epochs=1, batch_size=20, eta=0.5, momentum=0.3, progress=False)
    nets[0].weights[0] = nets[0].weights[0] * 0.5  # a new array
    nets[0].biases = [b + 1 for b in nets[0].biases]
    nets[1].weights[0] *= 0.5  # the same values, written in place
    for b in nets[1].biases:
        b += 1
    for net in nets:
        net.fit(X, y, epochs=1, batch_size=20, eta=0.5, momentum=0.3, progress=False)
    for a, b in zip(weights(nets[0]), weights(nets[1])):
        assert np.array_equal(a, b)
    untrained = xpbp.Network([4, 8, 3], device=device, seed=5)
    assert not np.array_equal(weights(nets[0])[0], weights(untrained)[0])


def test_shuffle_draws_a_new_permutation_each_epoch(device, rng):
    """Two epochs in one fit equal two fits of one epoch (the shuffle seed follows the
    epoch count), and differ from two epochs without shuffling."""
    X, y = blobs(rng, n=60)
    a = xpbp.Network([4, 5, 3], device=device, seed=1)
    a.fit(X, y, epochs=2, batch_size=7, eta=0.5, progress=False)
    b = xpbp.Network([4, 5, 3], device=device, seed=1)
    b.fit(X, y, epochs=1, batch_size=7, eta=0.5, progress=False)
    b.fit(X, y, epochs=1, batch_size=7, eta=0.5, progress=False)
    c = xpbp.Network([4, 5, 3], device=device, seed=1)
    c.fit(X, y, epochs=2, batch_size=7, eta=0.5, shuffle=False, progress=False)
    assert all(np.array_equal(p, q) for p, q in zip(weights(a), weights(b)))
    assert not np.allclose(weights(a)[0], weights(c)[0])


def test_float32_and_float64_agree(device, rng):
    X, y = blobs(rng, n=100)
    nets = []
    for dtype in ("float32", "float64"):
        net = xpbp.Network([4, 6, 3], dtype=dtype, device=device, seed=5)
        net.fit(X, y, epochs=2, batch_size=10, eta=0.3, progress=False)
        assert all(p.dtype == np.dtype(dtype) for p in net.weights + net.biases)
        nets.append(weights(net))
    for p32, p64 in zip(*nets):
        np.testing.assert_allclose(p32, p64, rtol=1e-4, atol=1e-5)


def test_update_rule_with_weight_decay_and_momentum(device, rng):
    """Whole-batch epochs without shuffling follow v ← μv − η(∇C + (λ/N)w), w ← w + v,
    and b likewise without the λ term, with ∇C from backprop."""
    X, y = blobs(rng, n=20)
    eta, lmbda, mu, n = 0.7, 2.0, 0.6, len(X)
    net = xpbp.Network([4, 5, 3], dtype="float64", device=device, seed=2)
    w, b = [to_numpy(p).copy() for p in net.weights], [to_numpy(p).copy() for p in net.biases]
    vw, vb = [np.zeros_like(p) for p in w], [np.zeros_like(p) for p in b]
    Y = np.eye(3)[y].T
    for _ in range(2):
        ref = xpbp.Network([4, 5, 3], dtype="float64", device="cpu", seed=2)
        ref.weights, ref.biases = [p.copy() for p in w], [p.copy() for p in b]
        nabla_b, nabla_w = ref.backprop(X.T, Y)
        vw = [mu * v - eta * (g + lmbda / n * p) for v, g, p in zip(vw, nabla_w, w)]
        vb = [mu * v - eta * g for v, g in zip(vb, nabla_b)]
        w, b = [p + v for p, v in zip(w, vw)], [p + v for p, v in zip(b, vb)]
    net.fit(X, y, epochs=2, batch_size=n, eta=eta, lmbda=lmbda, momentum=mu, shuffle=False, progress=False)
    for got, want in zip(weights(net), w + b):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_nielsen_update_without_momentum(device, rng):
    """With μ = 0 one step is Nielsen's w ← (1 − ηλ/N)w − η∇C, b ← b − η∇C."""
    X, y = blobs(rng, n=12)
    eta, lmbda, n = 0.5, 3.0, len(X)
    net = xpbp.Network([4, 5, 3], dtype="float64", device=device, seed=4)
    w, b = [to_numpy(p).copy() for p in net.weights], [to_numpy(p).copy() for p in net.biases]
    nabla_b, nabla_w = net.backprop(X.T, np.eye(3)[y].T)
    net.fit(X, y, epochs=1, batch_size=n, eta=eta, lmbda=lmbda, shuffle=False, progress=False)
    want = [(1 - eta * lmbda / n) * p - eta * to_numpy(g) for p, g in zip(w, nabla_w)]
    want += [p - eta * to_numpy(g) for p, g in zip(b, nabla_b)]
    for got, exp in zip(weights(net), want):
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-14)


def test_labels_and_one_hot_targets_train_alike(device, rng):
    X, y = blobs(rng, n=50)
    a = xpbp.Network([4, 5, 3], device=device, seed=9)
    a.fit(X, y, epochs=2, batch_size=8, eta=0.5, progress=False)
    b = xpbp.Network([4, 5, 3], device=device, seed=9)
    b.fit(X, np.eye(3, dtype=np.float32)[y], epochs=2, batch_size=8, eta=0.5, progress=False)
    assert all(np.array_equal(p, q) for p, q in zip(weights(a), weights(b)))


def test_training_cost_includes_l2_term(device, rng):
    X, y = blobs(rng, n=40)
    net = xpbp.Network([4, 5, 3], dtype="float64", device=device, seed=1)
    plain = net.fit(X, y, epochs=1, batch_size=40, eta=0.0, shuffle=False, progress=False).train_cost[0]
    reg = net.fit(X, y, epochs=1, batch_size=40, eta=0.0, lmbda=4.0, shuffle=False, progress=False).train_cost[0]
    l2 = 0.5 * 4.0 / 40 * sum(float((to_numpy(w) ** 2).sum()) for w in net.weights)
    assert plain == pytest.approx(net.cost(X.T, np.eye(3)[y].T), rel=1e-12)
    assert reg == pytest.approx(plain + l2, rel=1e-12)


def test_inputs_are_not_modified(device, rng):
    X, y = blobs(rng, n=30)
    X0, y0 = X.copy(), y.copy()
    net = xpbp.Network([4, 5, 3], device=device, seed=1)
    net.fit(X, y, epochs=2, batch_size=4, eta=0.5, validation_data=(X, y), progress=False)
    net.evaluate(X, y)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


def test_progress_bar_shows_examples_per_second(device, rng, capsys):
    X, y = blobs(rng, n=30)
    xpbp.Network([4, 5, 3], device=device, seed=1).fit(X, y, epochs=2, batch_size=5, eta=0.1, progress=True)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "ex/s" in err


def test_nielsen_settings_reach_90_percent_on_held_out_digits(device):
    """[784, 30, 10], sigmoid, quadratic, η = 3.0, mini-batch 10: network.py's settings."""
    X, y = datasets.load("mnist-sample", "train")
    X_test, y_test = datasets.load("mnist-sample", "test")
    net = xpbp.Network([784, 30, 10], device=device, seed=0)
    net.fit(X, y, epochs=10, batch_size=10, eta=3.0, progress=False)
    assert net.evaluate(X_test, y_test) >= 0.90


def test_references_to_parameters_follow_the_training(device, rng):
    """net.weights and net.biases are views of the buffer fit updates: a reference taken
    before fit sees the trained values, and stays the network's own."""
    X, y = blobs(rng, n=40)
    net = xpbp.Network([4, 5, 3], device=device, seed=1)
    w, b = net.weights[0], net.biases[1]
    before = to_numpy(w).copy()
    net.fit(X, y, epochs=2, batch_size=8, eta=0.5, momentum=0.5, progress=False)
    assert net.weights[0] is w and net.biases[1] is b
    assert not np.array_equal(to_numpy(w), before)


def test_work_buffers_are_kept_for_the_last_run_only(device, rng):
    """Five fits with five batch sizes keep the buffers of the last run's batch size and
    its short last batch, not of every size seen."""
    X, y = blobs(rng, n=100)
    net = xpbp.Network([4, 5, 3], device=device, seed=1)
    for m in (7, 9, 10, 33, 30):
        net.fit(X, y, epochs=1, batch_size=m, eta=0.1, progress=False)
    assert sorted(net._work._batches) == [10, 30]


def reference_sgd(net, X, Y, epochs, batch_size, eta, lmbda=0.0, eta_decay=0.0):
    """Nielsen's update written out with the network's own backprop, unshuffled: epoch e
    uses η/(1 + eta_decay·(e − 1)); each step w ← (1 − ηλ/N)w − η∇C, b ← b − η∇C."""
    n = len(X)
    ref = xpbp.Network(net.sizes, dtype="float64", device="cpu", seed=net.seed)
    w, b = [to_numpy(p).copy() for p in net.weights], [to_numpy(p).copy() for p in net.biases]
    for e in range(1, epochs + 1):
        rate = eta / (1 + eta_decay * (e - 1))
        for k in range(0, n, batch_size):
            ref.weights, ref.biases = [p.copy() for p in w], [p.copy() for p in b]
            nabla_b, nabla_w = ref.backprop(X[k : k + batch_size].T, Y[k : k + batch_size].T)
            w = [(1 - rate * lmbda / n) * p - rate * g for p, g in zip(w, nabla_w)]
            b = [p - rate * g for p, g in zip(b, nabla_b)]
    return w + b


def test_learning_rate_schedule_and_weight_decay_per_step(device, rng):
    """Three epochs of five mini-batches each: the schedule moves η once per epoch, from
    the first epoch's η, and the L2 term is λ/N of the whole training set at every step."""
    X, y = blobs(rng, n=20)
    net = xpbp.Network([4, 5, 3], dtype="float64", device=device, seed=6)
    want = reference_sgd(net, X, np.eye(3)[y], epochs=3, batch_size=4, eta=0.8, lmbda=3.0, eta_decay=0.5)
    net.fit(X, y, epochs=3, batch_size=4, eta=0.8, lmbda=3.0, eta_decay=0.5, shuffle=False, progress=False)
    for got, exp in zip(weights(net), want):
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-14)


def test_each_epoch_has_its_own_order(device, rng):
    """The shuffle is seeded by the seed and the epoch count: a run whose second epoch
    reused the first one's order ends elsewhere; and each order is a permutation."""
    X, y = blobs(rng, n=30)
    a = xpbp.Network([4, 5, 3], device=device, seed=2)
    a.fit(X, y, epochs=2, batch_size=3, eta=0.5, progress=False)
    b = xpbp.Network([4, 5, 3], device=device, seed=2)
    b.fit(X, y, epochs=1, batch_size=3, eta=0.5, progress=False)
    b._epochs_trained = 0  # as if the count did not move on
    b.fit(X, y, epochs=1, batch_size=3, eta=0.5, progress=False)
    assert not np.array_equal(weights(a)[0], weights(b)[0])
    orders = [draws.order(2, count, 30) for count in (0, 1)]
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(30)) and list(orders[0]) != list(orders[1])


def test_training_cost_of_shuffled_epochs(device, rng):
    """With η = 0 nothing moves, so each epoch's training cost, taken from the shuffled
    mini-batches' outputs against their own targets, is the cost of the whole set."""
    X, y = blobs(rng, n=40)
    net = xpbp.Network([4, 5, 3], dtype="float64", device=device, seed=1)
    history = net.fit(X, y, epochs=2, batch_size=6, eta=0.0, progress=False)
    want = net.cost(X.T, np.eye(3)[y].T)
    assert history.train_cost == pytest.approx([want, want], rel=1e-12)


EXTREME = np.full((2, 4), 3.4e38, np.float32)


def test_outputs_that_are_not_finite_give_no_result(device):
    """Finite but extreme inputs overflow the weighted sums: no label, no accuracy."""
    net = xpbp.Network([4, 8, 3], activation="relu", output_activation="softmax", cost="log_likelihood", device=device, seed=0)
    with pytest.raises(ValueError, match="outputs for 2 of the 2 rows of X are NaN or Inf"):
        net.predict(EXTREME)
    with pytest.raises(ValueError, match="outputs for 1 of the 3 rows of X are NaN or Inf"):
        net.evaluate(np.vstack([EXTREME[:1], np.zeros((2, 4), np.float32)]), np.array([0, 1, 2]))
    assert net.predict(np.zeros((2, 4), np.float32)).shape == (2,)


def test_validation_outputs_that_are_not_finite_are_recorded_as_nan(device, rng, caplog):
    X, y = blobs(rng, n=20)
    net = xpbp.Network([4, 8, 3], activation="relu", output_activation="softmax", cost="log_likelihood", device=device, seed=0)
    with caplog.at_level("WARNING", logger="xpbp.network"):
        history = net.fit(X, y, epochs=1, batch_size=5, eta=0.01, validation_data=(EXTREME, np.array([0, 1])), progress=False)
    assert np.isnan(history.val_accuracy[0]) and np.isnan(history.val_cost[0])
    assert "outputs for 2 validation examples are NaN or Inf" in caplog.text


def test_divergence_caused_by_weight_decay_blames_lambda(device, rng):
    X, y = blobs(rng, n=20)
    net = xpbp.Network([4, 5, 3], device=device, seed=1)
    with pytest.raises(xpbp.DivergenceError, match=r"1 - eta\*lmbda/N = -9, beyond -1; try a smaller lmbda \(lmbda=200\)"):
        net.fit(X, y, epochs=50, batch_size=20, eta=1.0, lmbda=200.0, progress=False)


@pytest.mark.parametrize("output, cost, eta", [("sigmoid", "quadratic", 3.0), ("sigmoid", "cross_entropy", 0.5),
                                               ("softmax", "log_likelihood", 0.1)])
def test_fit_defaults_are_nielsens(rng, output, cost, eta):
    """30 epochs, mini-batches of 10 and the η Nielsen uses with the cost."""
    X, y = blobs(rng, n=40)
    a = xpbp.Network([4, 5, 3], output_activation=output, cost=cost, device="cpu", seed=2)
    history = a.fit(X, y, progress=False)
    b = xpbp.Network([4, 5, 3], output_activation=output, cost=cost, device="cpu", seed=2)
    b.fit(X, y, epochs=30, batch_size=10, eta=eta, progress=False)
    assert len(history.train_cost) == 30 and all(np.array_equal(p, q) for p, q in zip(weights(a), weights(b)))
    tiny = xpbp.Network([4, 5, 3], device="cpu", seed=2)
    assert len(tiny.fit(X[:6], y[:6], epochs=2, progress=False).train_cost) == 2  # m = N when N < 10


def test_a_short_last_mini_batch_is_averaged_over_its_own_size(rng):
    """22 examples in mini-batches of 4: the last has 2, and its gradient is their mean."""
    X, y = blobs(rng, n=22)
    net = xpbp.Network([4, 5, 3], dtype="float64", device="cpu", seed=6)
    want = reference_sgd(net, X, np.eye(3)[y], epochs=1, batch_size=4, eta=0.8, lmbda=1.0)
    net.fit(X, y, epochs=1, batch_size=4, eta=0.8, lmbda=1.0, shuffle=False, progress=False)
    for got, exp in zip(weights(net), want):
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-14)


def test_validation_cost_and_accuracy_are_per_validation_example(device, rng):
    """A validation set smaller than the training set: its cost is its own mean."""
    X, y = blobs(rng, n=40)
    net = xpbp.Network([4, 5, 3], dtype="float64", device=device, seed=1)
    history = net.fit(X, y, epochs=1, batch_size=8, eta=0.0, validation_data=(X[:10], y[:10]), progress=False)
    assert history.val_cost == [pytest.approx(net.cost(X[:10].T, np.eye(3)[y[:10]].T), rel=1e-12)]
    assert history.val_accuracy == [pytest.approx(net.evaluate(X[:10], y[:10]))]


def test_divergence_by_weight_decay_at_another_learning_rate_leaves_finite_parameters(device, rng):
    X, y = blobs(rng, n=20)
    net = xpbp.Network([4, 5, 3], device=device, seed=1)
    with pytest.raises(xpbp.DivergenceError, match=r"1 - eta\*lmbda/N = -9, beyond -1; try a smaller lmbda \(lmbda=400\)"):
        net.fit(X, y, epochs=60, batch_size=20, eta=0.5, lmbda=400.0, progress=False)
    assert all(np.isfinite(p).all() for p in weights(net))


def test_blas_threads_follow_the_size_of_the_step(rng, monkeypatch):
    """One BLAS thread for a small step and for each of several ranks, all of them (None)
    for a large step; threads= and $XPBP_NUM_THREADS say otherwise; fit uses the choice."""
    monkeypatch.delenv("XPBP_NUM_THREADS", raising=False)
    assert threads.threads_for([784, 30, 10], 10) == 1
    assert threads.threads_for([784, 1024, 1024, 10], 1024) is None
    assert threads.threads_for([784, 1024, 1024, 10], 1024, ranks=2) == 1
    monkeypatch.setenv("XPBP_NUM_THREADS", "3")
    assert threads.threads_for([784, 30, 10], 10) == 3
    monkeypatch.delenv("XPBP_NUM_THREADS")
    limits = []
    monkeypatch.setattr(threads, "limit", lambda device, n: limits.append(n) or contextlib.nullcontext())
    X, y = blobs(rng, n=40)
    net = xpbp.Network([4, 5, 3], device="cpu", seed=2)
    net.fit(X, y, epochs=1, progress=False)
    monkeypatch.setattr(threads, "THREADED_STEP_FLOPS", 0)  # every step is large now
    net.fit(X, y, epochs=1, progress=False)
    net.fit(X, y, epochs=1, threads=2, progress=False)
    assert limits == [1, None, 2]


def test_an_epoch_in_a_callers_order_and_eta_trains_as_that_order_would(device, rng):
    """Trainer.epoch(order=, eta=) (what xpbp.sklearn drives) equals a fit on the rows in
    that order without shuffling, at that η."""
    X = rng.standard_normal((60, 5)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    order = rng.permutation(60)
    net = xpbp.Network([5, 7, 3], device=device, seed=4)
    trainer = net.trainer(X, y, batch_size=8, eta=3.0, shuffle=False, progress=False)
    with xpbp.backend.using(net.device), trainer.running():
        trainer.epoch(1, order=order, eta=0.25)
    other = xpbp.Network([5, 7, 3], device=device, seed=4)
    other.fit(X[order], y[order], epochs=1, batch_size=8, eta=0.25, shuffle=False, progress=False)
    for mine, theirs in zip([*net.weights, *net.biases], [*other.weights, *other.biases]):
        np.testing.assert_array_equal(xpbp.to_numpy(mine), xpbp.to_numpy(theirs))


def test_a_diverging_epoch_in_a_callers_order_is_replayed_in_that_order(rng):
    """The replay that pins down the mini-batch that diverged runs the caller's order and η."""
    X = rng.standard_normal((40, 3)).astype(np.float32)
    X[0] = 3e38  # row 0 overflows the weighted sums
    y = rng.integers(0, 2, 40)
    order = np.roll(np.arange(40), 25)  # row 0 trained 26th: in mini-batch 3 of 4
    net = xpbp.Network([3, 4, 2], activation="relu", output_activation="identity", device="cpu", seed=0)
    trainer = net.trainer(X, y, batch_size=10, eta=3.0, shuffle=False, progress=False)
    with xpbp.backend.using(net.device), trainer.running(), pytest.raises(xpbp.DivergenceError, match="mini-batch 3 of 4"):
        trainer.epoch(1, order=order, eta=0.5)
