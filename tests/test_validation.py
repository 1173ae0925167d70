"""Bad arguments and bad data raise errors that name the problem."""

import numpy as np
import pytest

import xpbp
from xpbp import backend


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"sizes": [784]}, ValueError, "at least two layer widths"),
        ({"sizes": "784,30"}, ValueError, "list of at least two"),
        ({"sizes": [784, 0, 10]}, ValueError, r"sizes\[1\] must be a positive integer"),
        ({"sizes": [784, 2.5, 10]}, ValueError, r"sizes\[1\] must be a positive integer"),
        ({"activation": "swish"}, ValueError, "activation .* must be one of"),
        ({"activation": "softmax"}, ValueError, "softmax is for the output layer"),
        ({"output_activation": "gelu"}, ValueError, "output_activation must be one of"),
        ({"cost": "hinge"}, ValueError, "cost must be one of"),
        ({"cost": "cross_entropy", "output_activation": "tanh"}, ValueError, "requires output_activation='sigmoid'"),
        ({"cost": "log_likelihood"}, ValueError, "requires output_activation='softmax'"),
        ({"output_activation": "softmax"}, ValueError, "pairs only with cost='log_likelihood'"),
        ({"init": "xavier"}, ValueError, "init must be"),
        ({"dtype": "float16"}, ValueError, "dtype must be"),
        ({"seed": -1}, ValueError, "seed must be"),
        ({"seed": 2**63}, ValueError, r"seed must be an integer in \[0, 2\*\*63\)"),
        ({"device": "tpu"}, ValueError, "unknown device 'tpu'"),
        ({"device": "cuda:x"}, ValueError, "unknown device"),
        ({"device": 0}, TypeError, "device must be a string"),
    ],
)
def test_network_arguments(kwargs, error, message):
    kwargs = {"sizes": [4, 3, 2], "device": "cpu", **kwargs}
    with pytest.raises(error, match=message):
        xpbp.Network(kwargs.pop("sizes"), **kwargs)


def test_cuda_without_cupy_names_cause_and_fix(monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", ImportError("No module named 'cupy'"))
    for device in ("cuda", "cuda:0"):
        with pytest.raises(RuntimeError, match=r"CuPy could not be imported \(No module named 'cupy'\).*pip install cupy-cuda12x .*pip install -e '\.\[cuda12x\]'"):
            xpbp.Network([3, 2], device=device)
    assert xpbp.Network([3, 2], device="auto").device == "cpu"


@pytest.fixture
def net(device):
    return xpbp.Network([4, 3, 2], device=device, seed=0)


def fit(net, X, y, **kwargs):
    kwargs = {"epochs": 1, "batch_size": 2, "eta": 0.1, "progress": False, **kwargs}
    return net.fit(X, y, **kwargs)


GOOD_X = np.ones((6, 4))
GOOD_Y = np.array([0, 1, 0, 1, 1, 0])


@pytest.mark.parametrize(
    "X, y, error, message",
    [
        (np.ones((6, 5)), GOOD_Y, ValueError, r"X must have shape \(n_examples, 4\), got shape \(6, 5\)"),
        (np.ones(24), GOOD_Y, ValueError, r"X must have shape \(n_examples, 4\), got shape \(24,\)"),
        (np.ones((0, 4)), GOOD_Y[:0], ValueError, "X is empty"),
        (np.where(np.eye(6, 4) > 0, np.nan, 1.0), GOOD_Y, ValueError, "X contains NaN or Inf"),
        (np.where(np.eye(6, 4) > 0, np.inf, 1.0), GOOD_Y, ValueError, "X contains NaN or Inf"),
        (np.full((6, 4), "a"), GOOD_Y, TypeError, "X must hold real numbers, got dtype <U1"),
        (np.ones((6, 4), dtype=complex), GOOD_Y, TypeError, "X must hold real numbers, got dtype complex128"),
        (GOOD_X, np.array([0, 1, 2, 0, 1, 0]), ValueError, r"labels in \[0, 2\], outside \[0, 1\] for 2 output neurons"),
        (GOOD_X, np.array([0, 1, -1, 0, 1, 0]), ValueError, r"labels in \[-1, 1\], outside \[0, 1\]"),
        (GOOD_X, GOOD_Y[:5], ValueError, "y has 5 labels but X has 6 examples"),
        (GOOD_X, GOOD_Y + 0.5, TypeError, "y must hold integer class labels, got dtype float64 with values that are not whole numbers"),
        (GOOD_X, np.ones((6, 3)), ValueError, r"y must have shape \(n_examples, 2\), got shape \(6, 3\)"),
        (GOOD_X, np.full((6, 2), np.nan), ValueError, "y contains NaN or Inf"),
    ],
)
def test_fit_data(net, X, y, error, message):
    with pytest.raises(error, match=message):
        fit(net, X, y)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": 7}, r"batch_size must be at most the number of examples \(6\)"),
        ({"eta": -1.0}, "eta must be >= 0"),
        ({"lmbda": -0.1}, "lmbda must be >= 0"),
        ({"momentum": 1.0}, r"momentum must be \[0.0, 1.0\)"),
        ({"eta": float("inf")}, "eta must be a finite number, got inf"),
        ({"lmbda": float("inf")}, "lmbda must be a finite number"),
        ({"eta_decay": float("nan")}, "eta_decay must be a finite number"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"validation_data": GOOD_X}, "validation_data must be a pair"),
        ({"validation_data": (GOOD_X[:, :3], GOOD_Y)}, r"validation_data\[0\] must have shape"),
    ],
)
def test_fit_options(net, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(net, GOOD_X, GOOD_Y, **kwargs)


def test_other_entry_points(net):
    with pytest.raises(ValueError, match=r"x must have shape \(4, m\), got shape \(3, 2\)"):
        net.backprop(np.ones((3, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="x has 2 columns .* but y has 3"):
        net.backprop(np.ones((4, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"a must have shape \(4, m\)"):
        net.feedforward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        net.backprop(np.full((4, 2), np.nan), np.ones((2, 2)))
    with pytest.raises(ValueError, match="y contains NaN or Inf"):
        net.cost(np.ones((4, 2)), np.full((2, 2), np.inf))
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        net.predict(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match=r"labels in \[0, 5\]"):
        net.evaluate(GOOD_X, np.array([0, 1, 5, 0, 1, 0]))


def test_replaced_parameters_are_checked_before_any_is_taken(device):
    """An array (or list) put in net.weights or net.biases is checked by the next call;
    a bad one is named and nothing is taken in."""
    net = xpbp.Network([4, 3, 2], device=device, seed=0)
    before = [backend.to_numpy(p).copy() for p in net.weights + net.biases]
    net.biases[0] = [[1.0], [2.0], [3.0]]  # a list of the right shape is fine
    net.weights[1] = [1.0, 2.0]  # not of shape (2, 3)
    with pytest.raises(ValueError, match=r"net.weights\[1\] must have shape \(2, 3\), got shape \(2,\)"):
        fit(net, GOOD_X, GOOD_Y)
    net.weights[1] = np.full((2, 3), np.nan)
    with pytest.raises(ValueError, match=r"net.weights\[1\] contains NaN or Inf"):
        net.predict(GOOD_X)
    net.weights = net.weights[:1]
    with pytest.raises(ValueError, match="must hold 4 arrays in all, got 3"):
        net.feedforward(GOOD_X.T)
    assert all(np.array_equal(backend.to_numpy(p), q) for p, q in zip(net._params.views, before))  # nothing taken in
    net.weights.append(np.zeros((2, 3)))
    fit(net, GOOD_X, GOOD_Y, eta=0.0)
    assert backend.to_numpy(net.biases[0]).ravel().tolist() == [1.0, 2.0, 3.0] and not backend.to_numpy(net.weights[1]).any()
