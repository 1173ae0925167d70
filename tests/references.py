"""Independent references for the tests: plain NumPy, one example at a time, written
from the book's formulas without using xpbp's activation or cost classes."""

import numpy as np

from xpbp import to_numpy

SIGMA = {
    "sigmoid": (lambda z: 1.0 / (1.0 + np.exp(-z)), lambda z: np.exp(-z) / (1.0 + np.exp(-z)) ** 2),
    "tanh": (np.tanh, lambda z: 1.0 / np.cosh(z) ** 2),
    "relu": (lambda z: np.where(z > 0, z, 0.0), lambda z: np.where(z > 0, 1.0, 0.0)),
    "identity": (lambda z: z, lambda z: np.ones_like(z)),
    "softmax": (lambda z: np.exp(z) / np.exp(z).sum(), None),
}


def cost_grad(cost, a, y):
    """∇ₐCₓ for one example."""
    if cost == "quadratic":
        return a - y
    if cost == "cross_entropy":
        return (a - y) / (a * (1 - a))
    return -y / a


def cost_value(cost, a, y):
    """Cₓ for one example."""
    if cost == "quadratic":
        return 0.5 * np.sum((y - a) ** 2)
    if cost == "cross_entropy":
        return -np.sum(y * np.log(a) + (1 - y) * np.log(1 - a))
    return -np.sum(y * np.log(a))


def sigma_prime_matrix(name, z):
    """Σ′(z): the Jacobian ∂a/∂z of one layer, diagonal except for softmax."""
    if name == "softmax":
        a = SIGMA["softmax"][0](z).ravel()
        return np.diag(a) - np.outer(a, a)
    return np.diag(SIGMA[name][1](z).ravel())


def forward(weights, biases, names, x):
    """zs and activations of one example x (a column)."""
    a, activations, zs = x, [x], []
    for w, b, name in zip(weights, biases, names):
        z = w @ a + b
        a = SIGMA[name][0](z)
        zs.append(z)
        activations.append(a)
    return zs, activations


def nielsen_backprop(weights, biases, names, cost, x, y):
    """Nielsen's network.py backprop, a plain loop over the columns of x and y, averaged."""
    m = x.shape[1]
    nabla_b = [np.zeros_like(b) for b in biases]
    nabla_w = [np.zeros_like(w) for w in weights]
    for j in range(m):
        xj, yj = x[:, [j]], y[:, [j]]
        zs, activations = forward(weights, biases, names, xj)
        if names[-1] == "softmax":
            delta = activations[-1] - yj
        else:
            delta = cost_grad(cost, activations[-1], yj) * SIGMA[names[-1]][1](zs[-1])
        db, dw = [None] * len(weights), [None] * len(weights)
        db[-1], dw[-1] = delta, delta @ activations[-2].T
        for l in range(2, len(weights) + 1):
            delta = (weights[-l + 1].T @ delta) * SIGMA[names[-l]][1](zs[-l])
            db[-l], dw[-l] = delta, delta @ activations[-l - 1].T
        nabla_b = [nb + d for nb, d in zip(nabla_b, db)]
        nabla_w = [nw + d for nw, d in zip(nabla_w, dw)]
    return [nb / m for nb in nabla_b], [nw / m for nw in nabla_w]


def numeric_gradient(net, x, y, eps=1e-6):
    """Central finite differences of ``net.cost(x, y)`` in every weight, then every bias:
    (C(p + ε) − C(p − ε)) / 2ε, one parameter at a time, on the network's own device."""
    gradient = []
    for p in net.weights + net.biases:
        g = np.zeros(p.shape)
        for idx in np.ndindex(p.shape):
            old = float(to_numpy(p[idx]))
            p[idx] = old + eps
            plus = net.cost(x, y)
            p[idx] = old - eps
            minus = net.cost(x, y)
            p[idx] = old
            g[idx] = (plus - minus) / (2 * eps)
        gradient.append(g)
    return gradient


def dropout_backprop(weights, biases, names, cost, x, y, masks):
    """The per-example loop of ``nielsen_backprop`` for a thinned network: column j of each
    hidden layer's mask multiplies that layer's activation of example j in the forward pass
    and its error in BP2."""
    m, L = x.shape[1], len(weights)
    nabla_b = [np.zeros_like(b) for b in biases]
    nabla_w = [np.zeros_like(w) for w in weights]
    for j in range(m):
        a, activations, zs = x[:, [j]], [x[:, [j]]], []
        for l, (w, b, name) in enumerate(zip(weights, biases, names)):
            z = w @ a + b
            a = SIGMA[name][0](z) * (masks[l][:, [j]] if l < L - 1 else 1.0)
            zs.append(z)
            activations.append(a)
        yj = y[:, [j]]
        if names[-1] == "softmax":
            delta = activations[-1] - yj
        else:
            delta = cost_grad(cost, activations[-1], yj) * SIGMA[names[-1]][1](zs[-1])
        nabla_b[-1] += delta
        nabla_w[-1] += delta @ activations[-2].T
        for l in range(2, L + 1):
            delta = (weights[-l + 1].T @ delta) * SIGMA[names[-l]][1](zs[-l]) * masks[-l + 1][:, [j]]
            nabla_b[-l] += delta
            nabla_w[-l] += delta @ activations[-l - 1].T
    return [nb / m for nb in nabla_b], [nw / m for nw in nabla_w]
