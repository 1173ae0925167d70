"""Optimizers and regularisation: Adam and Nesterov against torch.optim on the same initial
parameters and the same shuffled mini-batches; L1 against a per-example reference; an
optimizer's state carried from one fit to the next; and the refusals."""

import numpy as np
import pytest
import torch
from references import nielsen_backprop

import xpbp
from xpbp import draws, optimizers, to_numpy

SIZES = [4, 6, 5, 3]


def blobs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    return (rng.standard_normal((n, 4)) + y[:, None]).astype(np.float64), y


def host(net):
    return [to_numpy(p).copy() for p in net.weights + net.biases]


def torch_run(net, X, y, *, make, epochs, batch_size, lmbda):
    """The same training written with torch.nn and torch.optim, in float64: sigmoid layers,
    the mean quadratic cost, L2 as weight decay λ/N on the weights only, and xpbp's order of
    the examples in each epoch (drawn from the network's seed and the epoch count)."""
    w = [torch.tensor(to_numpy(p), requires_grad=True) for p in net.weights]
    b = [torch.tensor(to_numpy(p)[:, 0], requires_grad=True) for p in net.biases]
    n = len(X)
    opt = make([{"params": w, "weight_decay": lmbda / n}, {"params": b, "weight_decay": 0.0}])
    Xt, Yt = torch.tensor(X), torch.tensor(np.eye(3)[y])
    for e in range(epochs):
        order = draws.order(net.seed, e, n)
        for k in range(0, n, batch_size):
            i = torch.tensor(order[k : k + batch_size])
            a = Xt[i]
            for wl, bl in zip(w, b):
                a = torch.sigmoid(a @ wl.T + bl)
            loss = 0.5 * ((a - Yt[i]) ** 2).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [p.detach().numpy() for p in w] + [p.detach().numpy()[:, None] for p in b]


CASES = {
    "adam": (lambda: optimizers.Adam(), lambda g: torch.optim.Adam(g, lr=0.01), 0.01),
    "adam-betas": (lambda: optimizers.Adam(beta1=0.8, beta2=0.99, eps=1e-6),
                   lambda g: torch.optim.Adam(g, lr=0.02, betas=(0.8, 0.99), eps=1e-6), 0.02),
    "nesterov": (lambda: optimizers.SGD(momentum=0.9, nesterov=True),
                 lambda g: torch.optim.SGD(g, lr=0.5, momentum=0.9, nesterov=True), 0.5),
    "momentum": (lambda: optimizers.SGD(momentum=0.7), lambda g: torch.optim.SGD(g, lr=0.5, momentum=0.7), 0.5),
}


@pytest.mark.parametrize("lmbda", [0.0, 2.0])
@pytest.mark.parametrize("case", list(CASES))
def test_optimizers_match_torch_optim(device, case, lmbda):
    """Four epochs of 40 examples in shuffled mini-batches of 8 (the last epoch's order is
    not the first's): equal to rounding in float64. (Heavy-ball momentum is torch's with a
    velocity scaled by -η, the same at a constant η.)"""
    ours, theirs, eta = CASES[case]
    X, y = blobs()
    net = xpbp.Network(SIZES, dtype="float64", device=device, seed=4)
    want = torch_run(net, X, y, make=theirs, epochs=4, batch_size=8, lmbda=lmbda)
    net.fit(X, y, epochs=4, batch_size=8, eta=eta, lmbda=lmbda, optimizer=ours(), progress=False)
    for got, exp in zip(host(net), want):
        np.testing.assert_allclose(got, exp, rtol=1e-10, atol=1e-12)
    assert not np.allclose(host(net)[0], to_numpy(xpbp.Network(SIZES, dtype="float64", device="cpu", seed=4).weights[0]))


def test_named_optimizers_are_the_classes_with_fits_momentum(rng):
    X, y = blobs()
    runs = {}
    for name, optimizer, momentum in [("adam-name", "adam", 0.0), ("adam", optimizers.Adam(), 0.0),
                                      ("nesterov-name", "nesterov", 0.8), ("nesterov", optimizers.SGD(0.8, nesterov=True), 0.0)]:
        net = xpbp.Network(SIZES, dtype="float64", device="cpu", seed=2)
        net.fit(X, y, epochs=2, batch_size=8, eta=0.05, momentum=momentum, optimizer=optimizer, progress=False)
        runs[name] = host(net)
    for kind in ("adam", "nesterov"):
        assert all(np.array_equal(a, b) for a, b in zip(runs[kind], runs[f"{kind}-name"]))
    assert not np.allclose(runs["adam"][0], runs["nesterov"][0])


def test_adams_default_learning_rate_is_kingma_and_bas():
    X, y = blobs()
    a = xpbp.Network(SIZES, device="cpu", seed=2)
    a.fit(X, y, epochs=1, optimizer="adam", progress=False)
    b = xpbp.Network(SIZES, device="cpu", seed=2)
    b.fit(X, y, epochs=1, eta=0.001, optimizer="adam", progress=False)
    assert all(np.array_equal(p, q) for p, q in zip(host(a), host(b)))


def test_an_optimizer_instance_goes_on_from_one_fit_to_the_next():
    """Two fits of one epoch with one Adam equal one fit of two epochs (the step count and
    the moments carry over, as the shuffle's epoch count does); with a fresh Adam each
    time they do not."""
    X, y = blobs()
    whole = xpbp.Network(SIZES, dtype="float64", device="cpu", seed=3)
    whole.fit(X, y, epochs=2, batch_size=8, optimizer=optimizers.Adam(), progress=False)
    kept, adam = xpbp.Network(SIZES, dtype="float64", device="cpu", seed=3), optimizers.Adam()
    fresh = xpbp.Network(SIZES, dtype="float64", device="cpu", seed=3)
    for _ in range(2):
        kept.fit(X, y, epochs=1, batch_size=8, optimizer=adam, progress=False)
        fresh.fit(X, y, epochs=1, batch_size=8, optimizer=optimizers.Adam(), progress=False)
    assert adam.step == 2 * 5
    assert all(np.array_equal(p, q) for p, q in zip(host(whole), host(kept)))
    assert not np.allclose(host(whole)[0], host(fresh)[0])


def test_scikit_learns_efficient_adam_puts_epsilon_outside_the_correction():
    """efficient=True: ηₜ = η√(1 − β₂ᵗ)/(1 − β₁ᵗ), θ ← θ − ηₜ m/(√v + ε), as sklearn's AdamOptimizer."""
    theta, grads = np.zeros(3), [np.array([1e-3, -2.0, 0.5]), np.array([2e-3, 1.0, -0.5])]
    adam = optimizers.Adam(eps=1e-3, efficient=True)
    adam.start(theta)
    m = v = np.zeros(3)
    want = np.zeros(3)
    for t, g in enumerate(grads, start=1):
        adam.update(theta, g, 0.1)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        want = want - 0.1 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-3)
    np.testing.assert_allclose(theta, want, rtol=1e-14)
    paper = optimizers.Adam(eps=1e-3)
    other = np.zeros(3)
    paper.start(other)
    for g in grads:
        paper.update(other, g, 0.1)
    assert not np.allclose(other, theta)


def reference_l1(net, X, Y, epochs, batch_size, eta, lmbda):
    """Nielsen's L1 update, unshuffled, with ∇C from the per-example loop:
    w ← w − (ηλ/N) sgn(w) − η∇C, b ← b − η∇C."""
    n, names = len(X), ["sigmoid"] * (len(net.sizes) - 1)
    w, b = [to_numpy(p).copy() for p in net.weights], [to_numpy(p).copy() for p in net.biases]
    for _ in range(epochs):
        for k in range(0, n, batch_size):
            nabla_b, nabla_w = nielsen_backprop(w, b, names, "quadratic", X[k : k + batch_size].T, Y[k : k + batch_size].T)
            w = [p - eta * lmbda / n * np.sign(p) - eta * g for p, g in zip(w, nabla_w)]
            b = [p - eta * g for p, g in zip(b, nabla_b)]
    return w + b


def test_l1_follows_nielsens_update(device):
    X, y = blobs(n=24)
    net = xpbp.Network(SIZES, dtype="float64", device=device, seed=6)
    want = reference_l1(net, X, np.eye(3)[y], epochs=3, batch_size=5, eta=0.8, lmbda=3.0)
    history = net.fit(X, y, epochs=3, batch_size=5, eta=0.8, lmbda=3.0, regularization="l1", shuffle=False, progress=False)
    for got, exp in zip(host(net), want):
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-14)
    # the training cost carries the L1 term (λ/N)Σ|w| of the epoch's end
    plain = xpbp.Network(SIZES, dtype="float64", device="cpu", seed=6)
    plain.weights, plain.biases = [np.array(p) for p in want[:3]], [np.array(p) for p in want[3:]]
    before = net.fit(X, y, epochs=1, batch_size=24, eta=0.0, lmbda=3.0, regularization="l1", shuffle=False, progress=False)
    term = 3.0 / 24 * sum(np.abs(p).sum() for p in want[:3])
    assert before.train_cost[0] == pytest.approx(plain.cost(X.T, np.eye(3)[y].T) + term, rel=1e-12)
    assert len(history.train_cost) == 3


def test_l1_and_l2_train_different_networks():
    X, y = blobs()
    nets = {}
    for kind in ("l1", "l2"):
        nets[kind] = xpbp.Network(SIZES, dtype="float64", device="cpu", seed=1)
        nets[kind].fit(X, y, epochs=2, batch_size=8, eta=0.5, lmbda=5.0, regularization=kind, progress=False)
    assert not np.allclose(host(nets["l1"])[0], host(nets["l2"])[0])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of 'sgd', 'adam', 'nesterov' or an xpbp.optimizers.Optimizer, got 'rmsprop'"),
    ({"optimizer": "nesterov"}, ValueError, r"optimizer='nesterov' needs a momentum > 0, e.g. momentum=0.9"),
    ({"optimizer": "adam", "momentum": 0.9}, ValueError, r"momentum=0.9 is SGD's; adam takes its own settings, e.g. Adam\(...\)"),
    ({"optimizer": optimizers.Adam(), "momentum": 0.5}, ValueError, r"give it to the optimizer, e.g. SGD\(momentum=0.9\)"),
    ({"regularization": "l3"}, ValueError, "regularization must be one of 'l2', 'l1', got 'l3'"),
    ({"momentum": 1.0}, ValueError, r"momentum must be \[0.0, 1.0\)"),
])
def test_bad_optimizer_settings_are_refused_before_any_work(kwargs, error, message):
    X, y = blobs()
    net = xpbp.Network(SIZES, device="cpu", seed=1)
    before = host(net)
    with pytest.raises(error, match=message):
        net.fit(X, y, epochs=1, progress=False, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(before, host(net)))


@pytest.mark.parametrize("make, message", [
    (lambda: optimizers.Adam(beta1=1.0), r"beta1 must be \[0.0, 1.0\)"),
    (lambda: optimizers.Adam(eps=-1), "eps must be >= 0"),
    (lambda: optimizers.SGD(nesterov=True), "Nesterov momentum needs a momentum > 0"),
    (lambda: optimizers.SGD(momentum="a"), "momentum must be a real number"),
])
def test_optimizers_check_their_settings(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_sample_weights_weigh_each_examples_gradient(device):
    """One full-batch step with integer weights is the step on the data with each example
    repeated that many times (a weight of 0 leaves it out), L2 over the batch included."""
    X, y = blobs(n=12)
    w = np.array([1, 3, 0, 2, 1, 1, 4, 0, 1, 2, 1, 1], dtype=float)
    kwargs = dict(epochs=1, eta=0.7, lmbda=0.3, decay_over="batch", shuffle=False, optimizer="nesterov", momentum=0.5,
                  progress=False)
    weighted = xpbp.Network(SIZES, dtype="float64", device=device, seed=8)
    history = weighted.fit(X, y, batch_size=12, sample_weight=w, **kwargs)
    repeated = xpbp.Network(SIZES, dtype="float64", device=device, seed=8)
    again = repeated.fit(np.repeat(X, w.astype(int), axis=0), np.repeat(y, w.astype(int)), batch_size=int(w.sum()), **kwargs)
    for a, b in zip(host(weighted), host(repeated)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert history.train_cost[0] == pytest.approx(again.train_cost[0], rel=1e-12)  # the weighted mean, and λ over Σw
    unweighted = xpbp.Network(SIZES, dtype="float64", device="cpu", seed=8)
    unweighted.fit(X, y, batch_size=12, **kwargs)
    assert not np.allclose(host(unweighted)[0], host(weighted)[0])


def test_l2_over_the_batch_is_scikit_learns_alpha(device):
    """decay_over="batch": each step's term is (λ/m)w for its own m (the short last batch's
    too), and the training cost counts ½(λ/m)‖w‖² of each mini-batch before its step, m/N of it."""
    X, y = blobs(n=22)
    n, m, eta, lmbda = 22, 5, 0.6, 2.0
    net = xpbp.Network(SIZES, dtype="float64", device=device, seed=6)
    w, b = [to_numpy(p).copy() for p in net.weights], [to_numpy(p).copy() for p in net.biases]
    term, names, Y = 0.0, ["sigmoid"] * 3, np.eye(3)[y]
    for k in range(0, n, m):
        size = min(m, n - k)
        term += 0.5 * lmbda / size * sum((p * p).sum() for p in w) * size / n
        nabla_b, nabla_w = nielsen_backprop(w, b, names, "quadratic", X[k : k + m].T, Y[k : k + m].T)
        w = [p - eta * (g + lmbda / size * p) for p, g in zip(w, nabla_w)]
        b = [p - eta * g for p, g in zip(b, nabla_b)]
    net.fit(X, y, epochs=1, batch_size=m, eta=eta, lmbda=lmbda, decay_over="batch", shuffle=False, progress=False)
    for got, want in zip(host(net), w + b):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    still = xpbp.Network(SIZES, dtype="float64", device="cpu", seed=6)
    flat = still.fit(X, y, epochs=1, batch_size=m, eta=0.0, lmbda=lmbda, decay_over="batch", shuffle=False, progress=False)
    norm = sum((to_numpy(p) ** 2).sum() for p in still.weights)
    assert flat.train_cost[0] == pytest.approx(still.cost(X.T, Y.T) + 5 * 0.5 * lmbda * norm / n, rel=1e-12)


@pytest.mark.parametrize("w, message", [
    (np.ones(5), r"sample_weight must have shape \(40,\)"),
    (-np.ones(40), "sample_weight must be >= 0 and not all 0"),
    (np.zeros(40), "sample_weight must be >= 0 and not all 0"),
    (np.full(40, np.nan), "sample_weight contains NaN or Inf"),
])
def test_bad_sample_weights_are_refused(w, message):
    X, y = blobs()
    with pytest.raises(ValueError, match=message):
        xpbp.Network(SIZES, device="cpu", seed=1).fit(X, y, epochs=1, sample_weight=w, progress=False)
