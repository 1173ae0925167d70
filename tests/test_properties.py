"""Property-based tests with Hypothesis: random layer sizes, batch sizes, dtypes and
activations; backprop against finite differences, shapes, and junk inputs that may
only ever raise the documented errors."""

import warnings

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from references import numeric_gradient

import xpbp
from xpbp import to_numpy

PAIRINGS = [("sigmoid", "quadratic"), ("tanh", "quadratic"), ("identity", "quadratic"), ("relu", "quadratic"),
            ("sigmoid", "cross_entropy"), ("softmax", "log_likelihood")]
DEVICES = ["cpu", "strict"]

networks = st.fixed_dictionaries({
    "sizes": st.lists(st.integers(1, 5), min_size=2, max_size=4),
    "activation": st.sampled_from(["sigmoid", "tanh", "relu", "identity"]),
    "pairing": st.sampled_from(PAIRINGS),
    "seed": st.integers(0, 2**31),
    "m": st.integers(1, 6),
    "device": st.sampled_from(DEVICES),
})


def build(p, dtype="float64"):
    output, cost = p["pairing"]
    return xpbp.Network(p["sizes"], activation=p["activation"], output_activation=output, cost=cost,
                        dtype=dtype, device=p["device"], seed=p["seed"])


def batch(p, rng):
    n_in, n_out, m = p["sizes"][0], p["sizes"][-1], p["m"]
    x = rng.standard_normal((n_in, m))
    if p["pairing"][1] == "log_likelihood":
        y = np.eye(n_out)[:, rng.integers(n_out, size=m)]
    else:
        y = rng.uniform(0.1, 0.9, (n_out, m))
    return x, y


def pre_activations(net, x):
    """Every z of the forward pass, to keep finite differences away from ReLU's kink."""
    zs, a = [], x
    for w, b in zip(net.weights, net.biases):
        z = to_numpy(w) @ a + to_numpy(b)
        zs.append(z)
        a = np.maximum(z, 0)
    return zs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks)
def test_backprop_matches_finite_differences(p):
    net = build(p)
    rng = np.random.default_rng(p["seed"])
    x, y = batch(p, rng)
    if "relu" in (p["activation"], p["pairing"][0]):
        assume(all(np.abs(z).min() > 1e-3 for z in pre_activations(net, x)))
    nabla_b, nabla_w = net.backprop(x, y)
    for g, numeric in zip(nabla_w + nabla_b, numeric_gradient(net, x, y)):
        np.testing.assert_allclose(to_numpy(g), numeric, rtol=1e-6, atol=1e-6)


@settings(max_examples=150, deadline=None)
@given(networks, st.sampled_from(["float32", "float64"]), st.integers(1, 30))
def test_shapes_and_dtypes_are_preserved(p, dtype, n):
    net = build(p, dtype)
    rng = np.random.default_rng(p["seed"])
    x, y = batch(p, rng)
    nabla_b, nabla_w = net.backprop(x, y)
    assert [g.shape for g in nabla_w] == [w.shape for w in net.weights] == list(zip(p["sizes"][1:], p["sizes"][:-1]))
    assert [g.shape for g in nabla_b] == [(k, 1) for k in p["sizes"][1:]]
    assert all(g.dtype == np.dtype(dtype) for g in nabla_b + nabla_w)
    assert net.feedforward(x).shape == (p["sizes"][-1], p["m"])
    X = rng.standard_normal((n, p["sizes"][0]))
    labels = rng.integers(p["sizes"][-1], size=n)
    history = net.fit(X, labels, epochs=1, batch_size=min(p["m"], n), eta=0.01, progress=False)
    assert len(history.train_cost) == 1
    assert all(w.shape == (k, j) and w.dtype == np.dtype(dtype)
               for w, j, k in zip(net.weights, p["sizes"][:-1], p["sizes"][1:]))
    assert net.predict(X).shape == (n,) and net.predict(X).dtype.kind == "i"


junk_dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex128, np.str_, object])


@st.composite
def junk(draw):
    dtype = draw(junk_dtypes)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    if dtype is object:
        return np.array([None] * int(np.prod(shape)), dtype=object).reshape(shape)
    if dtype is np.str_:
        return np.full(shape, "x")
    elements = None
    if dtype in (np.float32, np.float64):
        elements = st.floats(allow_nan=True, allow_infinity=True, width=32 if dtype is np.float32 else 64)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=300, deadline=None)
@given(junk(), junk(), st.sampled_from(DEVICES), st.integers(-2, 5), st.floats(-1, 2))
def test_junk_only_raises_documented_errors(X, y, device, batch_size, eta):
    net = xpbp.Network([3, 4, 2], device=device, seed=0)
    calls = [
        lambda: net.fit(X, y, epochs=1, batch_size=batch_size, eta=eta, progress=False),
        lambda: net.predict(X),
        lambda: net.evaluate(X, y),
        lambda: net.backprop(X, y),
        lambda: net.feedforward(X),
        lambda: net.cost(X, y),
    ]
    for call in calls:
        try:
            with warnings.catch_warnings():
                # Finite but extreme inputs may overflow in w·x outside fit; NumPy's warning is the signal.
                warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
                warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
                call()
        except (ValueError, TypeError) as e:
            assert str(e)  # a message, naming the problem
        except xpbp.DivergenceError:
            pass  # finite but enormous data may overflow; that is reported, not crashed on
