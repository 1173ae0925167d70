"""backprop against independent oracles: finite differences, Nielsen's per-example
loop, the Σ′ matrix form of BP1/BP2, the tensor form of BP4, the row-vector form of
BP2, and PyTorch autograd. Each oracle checks both implementations of the equations:
the book's ``Network.backprop`` and the training step's, which writes into work
buffers (``xpbp.workspace``); and those two are held equal bit for bit."""

import itertools

import numpy as np
import pytest
from references import cost_grad, forward, nielsen_backprop, numeric_gradient, sigma_prime_matrix

import xpbp
from xpbp import backend, to_numpy
from xpbp.workspace import Workspace

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


def step_backprop(net, x, y, block_rows=0):
    """The training step's backprop for the gradient of the mean cost (scale 1/m), as
    copies of its work buffers ``(nabla_b, nabla_w)``; with `block_rows`, its hidden
    layers' elementwise work goes that many rows at a time."""
    with backend.using(net.device):
        x, y = net._inputs.pair(x, y)
        block_bytes = block_rows * x.shape[1] * net.dtype.itemsize
        work = Workspace(net.sizes, net._sigmas, net._cost, net.xp, net.dtype, block_bytes)
        work.backprop(net.weights, net.biases, x, y, 1.0 / x.shape[1])
        return [g.copy() for g in work.nabla_b], [g.copy() for g in work.nabla_w]


def book_backprop(net, x, y):
    return net.backprop(x, y)


@pytest.fixture(params=[book_backprop, step_backprop], ids=["book", "step"])
def backprop(request):
    return request.param


def params(net):
    return [to_numpy(w) for w in net.weights], [to_numpy(b) for b in net.biases]


def reference_case(device, combo, m, rng):
    """A network and a batch of m examples for ``combo``, with host copies of its
    parameters and the name of each layer's activation, for the reference forms."""
    hidden, output, cost, sizes = combo
    net, x, y = make(device, hidden, output, cost, sizes, m, rng)
    return net, x, y, *params(net), [hidden] * (len(sizes) - 2) + [output]


def rel_error(got, want):
    got, want = np.concatenate([g.ravel() for g in got]), np.concatenate([w.ravel() for w in want])
    return np.linalg.norm(got - want) / max(np.linalg.norm(got), np.linalg.norm(want), 1e-300)


@pytest.mark.parametrize("combo", COMBOS, ids=ids)
def test_finite_differences(device, backprop, combo, rng):
    hidden, output, cost, sizes = combo
    net, x, y = make(device, hidden, output, cost, sizes, 7, rng)
    nabla_b, nabla_w = backprop(net, x, y)
    numeric = numeric_gradient(net, x, y)
    analytic = [to_numpy(g) for g in nabla_w + nabla_b]
    assert rel_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("combo", COMBOS, ids=ids)
def test_matches_nielsen_per_example_loop(device, backprop, combo, rng):
    cost = combo[2]
    net, x, y, weights, biases, names = reference_case(device, combo, 11, rng)
    want_b, want_w = nielsen_backprop(weights, biases, names, cost, x, y)
    nabla_b, nabla_w = backprop(net, x, y)
    for got, want in zip(nabla_b + nabla_w, want_b + want_w):
        assert got.shape == want.shape
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("combo", COMBOS, ids=ids)
def test_sigma_prime_matrix_form(device, backprop, combo, rng):
    """δᴸ = Σ′(zᴸ)∇ₐC and δˡ = Σ′(zˡ)(wˡ⁺¹)ᵀδˡ⁺¹ with explicit Jacobian matrices, layer by
    layer and as the fully expanded product, equal the Hadamard form that backprop uses
    (for one example, nabla_b is δ itself)."""
    cost = combo[2]
    net, x, y, weights, biases, names = reference_case(device, combo, 3, rng)
    for j in range(x.shape[1]):
        xj, yj = x[:, [j]], y[:, [j]]
        zs, activations = forward(weights, biases, names, xj)
        L = len(weights)
        deltas = [None] * L
        deltas[-1] = sigma_prime_matrix(names[-1], zs[-1]) @ cost_grad(cost, activations[-1], yj)  # BP1
        for l in range(L - 2, -1, -1):
            deltas[l] = sigma_prime_matrix(names[l], zs[l]) @ weights[l + 1].T @ deltas[l + 1]  # BP2
        nabla_b, _ = backprop(net, xj, yj)
        for l in range(L):
            expanded = cost_grad(cost, activations[-1], yj)
            expanded = sigma_prime_matrix(names[-1], zs[-1]) @ expanded
            for k in range(L - 2, l - 1, -1):
                expanded = sigma_prime_matrix(names[k], zs[k]) @ weights[k + 1].T @ expanded
            np.testing.assert_allclose(deltas[l], expanded, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(to_numpy(nabla_b[l]), deltas[l], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("combo", [c for c in COMBOS if c[3] == [3, 4, 5, 3]], ids=ids)
def test_matches_pytorch_autograd(device, backprop, combo, rng):
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
    nabla_b, nabla_w = backprop(net, x, y)
    for got, want in zip(nabla_b + nabla_w, tb + tw):
        np.testing.assert_allclose(to_numpy(got), want.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("combo", COMBOS, ids=ids)
def test_training_step_backprop_equals_the_book_bit_for_bit(device, combo, rng):
    """The work-buffer backprop of fit and the book's allocating one compute the same
    floating-point operations in the same order, at any batch size, buffers reused, and
    with the hidden layers' elementwise work in blocks of rows (one row, or two with a
    short last block) as on a CPU for a large layer."""
    hidden, output, cost, sizes = combo
    for dtype in ("float32", "float64"):
        net = xpbp.Network(sizes, activation=hidden, output_activation=output, cost=cost, dtype=dtype, device=device, seed=3)
        for m in (5, 1, 5):
            _, x, y = make(device, hidden, output, cost, sizes, m, rng)
            want = sum(net.backprop(x, y), [])
            for block_rows in (0, 1, 2):
                for got, w in zip(sum(step_backprop(net, x, y, block_rows), []), want):
                    assert got.dtype == w.dtype and np.array_equal(to_numpy(got), to_numpy(w))


@pytest.mark.parametrize("combo", [c for c in COMBOS if c[3] != [4, 3]], ids=ids)
def test_tensor_form_of_bp4(device, backprop, combo, rng):
    """∂C/∂wˡ by the chain rule written out with tensors: ∂zˡ/∂wˡ is a 3-tensor of shape
    (nˡ, nˡ, nˡ⁻¹) whose slice k is ∂z_k/∂w (row k holds aˡ⁻¹ᵀ, all other rows zero), and
    ∂C/∂wˡ is the row vector δˡ contracted with it; averaged over the examples, it is
    BP4's δ aᵀ. The δ here come from the Σ′ matrix form, independently of xpbp."""
    cost = combo[2]
    net, x, y, weights, biases, names = reference_case(device, combo, 4, rng)
    L = len(weights)
    want = [np.zeros_like(w) for w in weights]
    for j in range(x.shape[1]):
        zs, activations = forward(weights, biases, names, x[:, [j]])
        delta = sigma_prime_matrix(names[-1], zs[-1]) @ cost_grad(cost, activations[-1], y[:, [j]])  # BP1
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                delta = sigma_prime_matrix(names[l], zs[l]) @ weights[l + 1].T @ delta  # BP2
            n_out, n_in = weights[l].shape
            dz_dw = np.zeros((n_out, n_out, n_in))
            for k in range(n_out):
                dz_dw[k, k, :] = activations[l].ravel()  # z_k = Σᵢ w_ki a_i + b_k
            want[l] += np.tensordot(delta.ravel(), dz_dw, axes=(0, 0)) / x.shape[1]
    _, nabla_w = backprop(net, x, y)
    for got, w in zip(nabla_w, want):
        np.testing.assert_allclose(to_numpy(got), w, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("combo", [c for c in COMBOS if c[3] != [4, 3]], ids=ids)
def test_row_vector_form_of_bp2(device, backprop, combo, rng):
    """With gradients as row vectors, the chain rule reads δᴸ = ∇ₐC Σ′(zᴸ) and
    δˡ = δˡ⁺¹ wˡ⁺¹ Σ′(zˡ): multiplied left to right, no transposes. For one example,
    ∂C/∂bˡ is δˡ, a column: the transpose of the row."""
    cost = combo[2]
    net, x, y, weights, biases, names = reference_case(device, combo, 3, rng)
    for j in range(x.shape[1]):
        xj, yj = x[:, [j]], y[:, [j]]
        zs, activations = forward(weights, biases, names, xj)
        rows = [None] * len(weights)
        rows[-1] = cost_grad(cost, activations[-1], yj).T @ sigma_prime_matrix(names[-1], zs[-1])  # BP1
        for l in range(len(weights) - 2, -1, -1):
            rows[l] = rows[l + 1] @ weights[l + 1] @ sigma_prime_matrix(names[l], zs[l])  # BP2
        nabla_b, _ = backprop(net, xj, yj)
        for got, row in zip(nabla_b, rows):
            assert row.shape == (1, got.shape[0])
            np.testing.assert_allclose(to_numpy(got), row.T, rtol=1e-10, atol=1e-12)


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


@pytest.mark.parametrize("output, cost", [("identity", "quadratic"), ("sigmoid", "quadratic"), ("softmax", "log_likelihood")])
def test_the_training_step_returns_the_outputs_it_trained_on(device, output, cost, rng):
    """The step's aᴸ (kept for the epoch's training cost) is the forward pass's, untouched
    by BP1, which writes σ′ over zᴸ: for the identity, aᴸ is zᴸ itself."""
    net, x, y = make(device, "tanh", output, cost, [4, 5, 3], 6, rng)
    with backend.using(net.device):
        xs, ys = net._inputs.pair(x, y)
        work = Workspace(net.sizes, net._sigmas, net._cost, net.xp, net.dtype)
        a = work.backprop(net.weights, net.biases, xs, ys, 1.0)
    np.testing.assert_array_equal(to_numpy(a), to_numpy(net.feedforward(x)))
