"""Activations and costs: values, derivatives, and numerical stability at the extremes."""

import numpy as np
import pytest
from references import SIGMA

from xpbp import activations, costs, to_device, to_numpy


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "identity"])
def test_fn_and_prime_match_the_formulas(device, name, rng):
    z = rng.standard_normal((5, 7)) * 3
    sigma = activations.get(name)
    np.testing.assert_allclose(to_numpy(sigma.fn(to_device(z, device))), SIGMA[name][0](z), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(to_numpy(sigma.prime(to_device(z, device))), SIGMA[name][1](z), rtol=1e-12, atol=1e-15)
    eps = 1e-6  # σ′ is the derivative of σ
    numeric = (SIGMA[name][0](z + eps) - SIGMA[name][0](z - eps)) / (2 * eps)
    np.testing.assert_allclose(to_numpy(sigma.prime(to_device(z, device))), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "identity", "softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_stay_finite(device, name, dtype):
    """pytest turns warnings into errors here, so an overflow warning fails the test."""
    z = to_device(np.array([[-1000.0, 0.0], [1000.0, -1000.0], [0.0, 1000.0]], dtype=dtype), device)
    sigma = activations.get(name)
    out = [sigma.fn(z)] + ([sigma.prime(z)] if name != "softmax" else [])
    for a in out:
        assert a.dtype == dtype and np.isfinite(to_numpy(a)).all()
    if name == "sigmoid":
        np.testing.assert_array_equal(to_numpy(out[0]), [[0, 0.5], [1, 0], [0.5, 1]])
    if name == "softmax":
        np.testing.assert_allclose(to_numpy(out[0]), [[0, 0], [1, 0], [0, 1]], atol=1e-30)


def test_softmax_is_shifted_and_sums_to_one(device, rng):
    z = rng.standard_normal((4, 6)) * 50 + 700  # e^z alone would overflow
    a = to_numpy(activations.get("softmax").fn(to_device(z, device)))
    e = np.exp(z - z.max(axis=0))
    np.testing.assert_allclose(a, e / e.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(a.sum(axis=0), 1.0, rtol=1e-14)


@pytest.mark.parametrize("name", ["quadratic", "cross_entropy", "log_likelihood"])
def test_costs_guarded_at_zero_and_one(device, name):
    a = to_device(np.array([[0.0, 1.0], [1.0, 0.0]]), device)
    y_right = to_device(np.array([[0.0, 1.0], [1.0, 0.0]]), device)
    y_wrong = to_device(np.array([[1.0, 0.0], [0.0, 1.0]]), device)
    cost = costs.get(name)
    assert np.array_equal(to_numpy(cost.fn(a, y_right)), [0.0, 0.0])
    wrong = to_numpy(cost.fn(a, y_wrong))
    assert np.isfinite(wrong).all() and (wrong > 0).all()


@pytest.mark.parametrize("name", ["quadratic", "cross_entropy", "log_likelihood"])
def test_prime_is_the_gradient_of_fn(device, name, rng):
    a = rng.uniform(0.1, 0.9, (3, 4))
    y = rng.uniform(0.1, 0.9, (3, 4))
    cost = costs.get(name)
    eps = 1e-6
    numeric = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        d = np.zeros_like(a)
        d[idx] = eps
        plus = to_numpy(cost.fn(to_device(a + d, device), to_device(y, device)))
        minus = to_numpy(cost.fn(to_device(a - d, device), to_device(y, device)))
        numeric[idx] = (plus - minus)[idx[1]] / (2 * eps)
    np.testing.assert_allclose(to_numpy(cost.prime(to_device(a, device), to_device(y, device))), numeric, rtol=1e-7)


def test_relu_prime_at_zero_is_zero(device):
    """max(0, z) has no derivative at 0; the book's convention, and xpbp's, is σ′(0) = 0."""
    z = to_device(np.array([[-1.0, 0.0, 2.0]]), device)
    relu = activations.get("relu")
    assert to_numpy(relu.prime(z)).tolist() == [[0.0, 0.0, 1.0]]
    out = to_device(np.full((1, 3), 7.0), device)
    assert to_numpy(relu.prime(z, out=out)).tolist() == [[0.0, 0.0, 1.0]]


def test_logarithms_are_guarded_at_the_smallest_normal_number():
    """−ln a for a = 1e-10 (representable in float32) is 23.03, not cut short by a larger guard."""
    a = np.array([[1e-10]], dtype=np.float32)
    assert costs.get("cross_entropy").fn(a, np.ones_like(a))[0] == pytest.approx(-np.log(1e-10), rel=1e-6)
    assert costs.get("log_likelihood").fn(a, np.ones_like(a))[0] == pytest.approx(-np.log(1e-10), rel=1e-6)


def test_exp_output_and_its_derivative(device, rng):
    z = rng.standard_normal((3, 5)) * 2
    exp = activations.get("exp")
    np.testing.assert_allclose(to_numpy(exp.fn(to_device(z, device))), np.exp(z), rtol=1e-15)
    np.testing.assert_allclose(to_numpy(exp.prime(to_device(z, device))), np.exp(z), rtol=1e-15)
    a = exp.fn(to_device(z, device))
    np.testing.assert_allclose(to_numpy(exp.prime(None, a)), np.exp(z), rtol=1e-15)


def test_poisson_cost_is_half_scikit_learns_deviance_and_delta_is_bp1(device, rng):
    from sklearn.metrics import mean_poisson_deviance

    a = rng.uniform(0.2, 3.0, (1, 40))
    y = rng.poisson(1.5, (1, 40)).astype(float)  # zeros included
    cost = costs.get("poisson")
    per_example = to_numpy(cost.fn(to_device(a, device), to_device(y, device)))
    np.testing.assert_allclose(per_example.mean(), mean_poisson_deviance(y[0], a[0]) / 2, rtol=1e-13)
    z = np.log(a)
    exp = activations.get("exp")
    bp1 = to_numpy(cost.prime(to_device(a, device), to_device(y, device))) * a  # ∇ₐC ⊙ σ′(z)
    delta = to_numpy(cost.delta(to_device(z, device), to_device(a, device), to_device(y, device), exp))
    np.testing.assert_allclose(delta, bp1, rtol=1e-12, atol=1e-15)
    eps = 1e-6  # and ∇ₐC is the derivative of C
    numeric = (to_numpy(cost.fn(to_device(a + eps, device), to_device(y, device)))
               - to_numpy(cost.fn(to_device(a - eps, device), to_device(y, device)))) / (2 * eps)
    np.testing.assert_allclose(to_numpy(cost.prime(to_device(a, device), to_device(y, device)))[0], numeric, rtol=1e-6)
