"""backprop against independent oracles: finite differences, Nielsen's per-example
loop, the Σ′ matrix form of BP1/BP2, and PyTorch autograd."""

import itertools

import numpy as np
import pytest

import xpbp
from xpbp import to_numpy

from references import cost_grad, forward, nielsen_backprop, numeric_gradient, sigma_prime_matrix

HIDDEN = ["sigmoid", "tanh", "relu", "identity"]
# (output activation, cost): every pairing the network accepts.
OUTPUTS = [("sigmoid", "quadratic"), ("tanh", "quadratic"), ("relu", "quadratic"), ("identity", "quadratic"),
           ("sigmoid", "cross_entropy"), ("softmax", "log_likelihood")]
SHAPES = [[4, 3], [4, 5, 3], [3, 4, 5, 3]]
COMBOS = [(h, o, c, s) for h, (o, c), s in itertools.product(HIDDEN, OUTPUTS, SHAPES)]


def ids(combo):
    h, o, c, s = combo
    return f"{h}-{o}-{c}-{'x'.join(map(str, s))}"


def make(device, hidden, output, cost, sizes, m, rng):
    """A float64 network and a batch (x, y) whose targets suit the cost."""
    net = xpbp.Network(sizes, activation=hidden, output_activation=output, cost=cost,
                       dtype="float64", device=device, seed=int(rng.integers(1 << 30)))
    x = rng.standard_normal((sizes[0], m))
    if cost == "log_likelihood":
        y = np.eye(sizes[-1])[:, rng.integers(sizes[-1], size=m)]
    else:
        y = rng.uniform(0.05, 0.95, (sizes[-1], m))
    return net, x, y


def params(net):
    return [to_numpy(w) for w in net.weights], [to_numpy(b) for b in net.biases]


def rel_error(got, want):
    got, want = np.concatenate([g.ravel() for g in got]), np.concatenate([w.ravel() for w in want])
    return np.linalg.norm(got - want) / max(np.linalg.norm(got), np.linalg.norm(want), 1e-300)


@pytest.mark.parametrize("combo", COMBOS, ids=ids)
def test_finite_differences(device, combo, rng):
    hidden, output, cost, sizes = combo
    net, x, y = make(device, hidden, output, cost, sizes, 7, rng)
    nabla_b, nabla_w = net.backprop(x, y)
    numeric = numeric_gradient(net, x, y)
    analytic = [to_numpy(g) for g in nabla_w + nabla_b]
    assert rel_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("combo", COMBOS, ids=ids)
def test_matches_nielsen_per_example_loop(device, combo, rng):
    hidden, output, cost, sizes = combo
    net, x, y = make(device, hidden, output, cost, sizes, 11, rng)
    weights, biases = params(net)
    names = [hidden] * (len(sizes) - 2) + [output]
    want_b, want_w = nielsen_backprop(weights, biases, names, cost, x, y)
    nabla_b, nabla_w = net.backprop(x, y)
    for got, want in zip(nabla_b + nabla_w, want_b + want_w):
        assert got.shape == want.shape
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("combo", COMBOS, ids=ids)
def test_sigma_prime_matrix_form(device, combo, rng):
    """δᴸ = Σ′(zᴸ)∇ₐC and δˡ = Σ′(zˡ)(wˡ⁺¹)ᵀδˡ⁺¹ with explicit Jacobian matrices, layer by
    layer and as the fully expanded product, equal the Hadamard form that backprop uses
    (for one example, nabla_b is δ itself)."""
    hidden, output, cost, sizes = combo
    net, x, y = make(device, hidden, output, cost, sizes, 3, rng)
    weights, biases = params(net)
    names = [hidden] * (len(sizes) - 2) + [output]
    for j in range(x.shape[1]):
        xj, yj = x[:, [j]], y[:, [j]]
        zs, activations = forward(weights, biases, names, xj)
        L = len(weights)
        deltas = [None] * L
        deltas[-1] = sigma_prime_matrix(names[-1], zs[-1]) @ cost_grad(cost, activations[-1], yj)  # BP1
        for l in range(L - 2, -1, -1):
            deltas[l] = sigma_prime_matrix(names[l], zs[l]) @ weights[l + 1].T @ deltas[l + 1]  # BP2
        nabla_b, _ = net.backprop(xj, yj)
        for l in range(L):
            expanded = cost_grad(cost, activations[-1], yj)
            expanded = sigma_prime_matrix(names[-1], zs[-1]) @ expanded
            for k in range(L - 2, l - 1, -1):
                expanded = sigma_prime_matrix(names[k], zs[k]) @ weights[k + 1].T @ expanded
            np.testing.assert_allclose(deltas[l], expanded, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(to_numpy(nabla_b[l]), deltas[l], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("combo", [c for c in COMBOS if c[3] == [3, 4, 5, 3]], ids=ids)
def test_matches_pytorch_autograd(device, combo, rng):
    torch = pytest.importorskip("torch")
    hidden, output, cost, sizes = combo
    net, x, y = make(device, hidden, output, cost, sizes, 9, rng)
    weights, biases = params(net)
    fns = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda z: z,
           "softmax": lambda z: torch.softmax(z, dim=0)}
    names = [hidden] * (len(sizes) - 2) + [output]
    tw = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    tb = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in biases]
    a, ty = torch.tensor(x), torch.tensor(y)
    for w, b, name in zip(tw, tb, names):
        a = fns[name](w @ a + b)
    if cost == "quadratic":
        per_example = 0.5 * ((ty - a) ** 2).sum(dim=0)
    elif cost == "cross_entropy":
        per_example = -(ty * torch.log(a) + (1 - ty) * torch.log(1 - a)).sum(dim=0)
    else:
        per_example = -(ty * torch.log(a)).sum(dim=0)
    per_example.mean().backward()
    nabla_b, nabla_w = net.backprop(x, y)
    for got, want in zip(nabla_b + nabla_w, tb + tw):
        np.testing.assert_allclose(to_numpy(got), want.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_cost_values_match_the_book(device, rng):
    """net.cost is the mean over columns of ½‖y − a‖², −Σ[y ln a + (1−y) ln(1−a)], −ln a_y."""
    for output, cost in [("sigmoid", "quadratic"), ("sigmoid", "cross_entropy"), ("softmax", "log_likelihood")]:
        net, x, y = make(device, "sigmoid", output, cost, [4, 5, 3], 6, rng)
        weights, biases = params(net)
        names = ["sigmoid", output]
        want = []
        for j in range(6):
            a = forward(weights, biases, names, x[:, [j]])[1][-1]
            want.append(-np.log(a[np.argmax(y[:, j]), 0]) if cost == "log_likelihood" else
                        0.5 * np.sum((y[:, [j]] - a) ** 2) if cost == "quadratic" else
                        -np.sum(y[:, [j]] * np.log(a) + (1 - y[:, [j]]) * np.log(1 - a)))
        assert net.cost(x, y) == pytest.approx(np.mean(want), rel=1e-12)


def test_gradients_live_on_the_device(device, rng):
    net, x, y = make(device, "sigmoid", "sigmoid", "quadratic", [4, 5, 3], 5, rng)
    nabla_b, nabla_w = net.backprop(x, y)
    for g in nabla_b + nabla_w:
        assert xpbp.backend.device_of(g) == net.device
    assert xpbp.backend.device_of(net.feedforward(x)) == net.device
    assert [g.shape for g in nabla_w] == [w.shape for w in net.weights]
    assert [g.shape for g in nabla_b] == [b.shape for b in net.biases]
