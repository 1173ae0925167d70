"""Tasks that know what they are: a binary classifier with one sigmoid output, regression
scored by RMSE and R² (never an accuracy), the task inferred or given, and kept in the file."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.metrics import mean_squared_error, r2_score

import xpbp
from xpbp import tasks, to_numpy


def standard(X):
    return ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)


def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return standard(X), y


def test_one_sigmoid_output_is_a_binary_classifier(device):
    """The case that reported 100% while predicting only 0s: one output neuron, labels 0 and
    1; its accuracy is the thresholded one everywhere, and it predicts both classes."""
    X, y = cancer()
    net = xpbp.Network([30, 16, 1], output_activation="sigmoid", cost="cross_entropy", device=device, seed=0)
    history = net.fit(X[:400], y[:400], epochs=10, batch_size=20, eta=0.5, validation_data=(X[400:], y[400:]), progress=False)
    assert net.task == "classification"
    predicted = net.predict(X[400:])
    assert set(np.unique(predicted)) == {0, 1}
    thresholded = (to_numpy(net.feedforward(X[400:].T))[0] >= 0.5).astype(int)
    assert np.array_equal(predicted, thresholded)
    accuracy = np.mean(thresholded == y[400:])
    assert 0.9 < accuracy < 1.0
    assert history.val_accuracy[-1] == pytest.approx(accuracy)
    assert net.evaluate(X[400:], y[400:]) == pytest.approx(accuracy)
    # (N, 1) targets are the same classifier; float 0./1. labels are labels
    other = xpbp.Network([30, 16, 1], output_activation="sigmoid", cost="cross_entropy", device=device, seed=0)
    again = other.fit(X[:400], y[:400, None].astype(np.float32), epochs=10, batch_size=20, eta=0.5,
                      validation_data=(X[400:], y[400:].astype(float)), progress=False)
    assert again.val_accuracy == history.val_accuracy


def test_one_output_takes_labels_zero_and_one_only():
    X, y = cancer()
    net = xpbp.Network([30, 4, 1], output_activation="sigmoid", device="cpu", seed=0)
    with pytest.raises(ValueError, match=r"labels in \[0, 2\], outside \[0, 1\] for 1 output neuron \(a binary classifier"):
        net.fit(X, y * 2, epochs=1, progress=False)


def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return standard(X), ((y - y.mean()) / y.std()).astype(np.float32)


def test_regression_reports_rmse_and_r2_never_an_accuracy(device):
    X, y = diabetes()
    net = xpbp.Network([10, 16, 1], activation="tanh", output_activation="identity", dtype="float64", device=device, seed=1)
    history = net.fit(X[:350], y[:350], epochs=20, batch_size=10, eta=0.01, validation_data=(X[350:], y[350:]), progress=False)
    assert net.task == "regression"
    assert history.val_accuracy == [] and len(history.val_rmse) == len(history.val_r2) == 20
    assert history.metrics() == ["train_cost", "val_cost", "val_rmse", "val_r2", "seconds"]
    predicted = net.predict(X[350:])
    assert predicted.shape == (92, 1)
    rmse, r2 = np.sqrt(mean_squared_error(y[350:], predicted[:, 0])), r2_score(y[350:], predicted[:, 0])
    assert history.val_rmse[-1] == pytest.approx(rmse, rel=1e-9) and history.val_r2[-1] == pytest.approx(r2, rel=1e-9)
    assert 0.3 < r2 < 0.7  # diabetes: a linear model scores about 0.5
    scores = net.metrics(X[350:], y[350:])
    assert set(scores) == {"cost", "rmse", "r2"} and scores["r2"] == pytest.approx(r2, rel=1e-9)
    assert net.evaluate(X[350:], y[350:]) == pytest.approx(r2, rel=1e-9)


def test_multi_output_regression_averages_r2_over_outputs_as_scikit_learn_does(device, rng):
    """Three outputs on very different scales and means (R²'s sums are taken from the first
    example, so a large mean costs no digits)."""
    X = rng.standard_normal((300, 5))
    Y = np.stack([X[:, 0] + 1e4, 100 * X[:, 1] - 3, X[:, 2] * X[:, 3]], axis=1) + 0.1 * rng.standard_normal((300, 3))
    net = xpbp.Network([5, 12, 3], activation="relu", output_activation="identity", dtype="float64", device=device, seed=3)
    net.biases[-1][...] = xpbp.to_device(Y.mean(axis=0)[:, None], net.device)
    scores = net.metrics(X, Y)
    predicted = net.predict(X)
    assert scores["r2"] == pytest.approx(r2_score(Y, predicted), rel=1e-9, abs=1e-9)
    assert scores["rmse"] == pytest.approx(np.sqrt(mean_squared_error(Y, predicted)), rel=1e-9)


@pytest.mark.parametrize("output, y, want", [
    ("sigmoid", np.array([0, 1, 2]), "classification"),
    ("identity", np.array([0, 1, 2]), "classification"),
    ("identity", np.array([0.5, 1.0, 2.0]), "regression"),
    ("sigmoid", np.array([0.0, 1.0, 1.0]), "classification"),
    ("sigmoid", np.array([0.2, 0.7, 1.0]), "regression"),
    ("sigmoid", np.array([[0.0, 1.0], [1.0, 0.0]]), "classification"),
    ("sigmoid", np.array([[0.2, 0.7], [1.0, 0.0]]), "regression"),
    ("sigmoid", np.array([[1.0, 1.0], [1.0, 0.0]]), "multilabel"),
    ("sigmoid", np.array([[0.0, 0.0], [0.0, 1.0]]), "multilabel"),
    ("identity", np.array([[0.0, 1.0], [1.0, 0.0]]), "regression"),
    ("softmax", np.array([[0.2, 0.8], [1.0, 0.0]]), "classification"),
    ("sigmoid", None, "classification"),
    ("relu", None, "regression"),
])
def test_the_task_is_inferred_from_the_output_layer_and_the_targets(output, y, want):
    assert tasks.infer(output, 1 if y is None or y.ndim == 1 else y.shape[1], y).name == want


def test_a_given_task_wins_and_is_kept_in_the_model_file(tmp_path):
    X, y = diabetes()
    net = xpbp.Network([10, 4, 1], output_activation="sigmoid", device="cpu", seed=1, task="regression")
    labels = (y > 0).astype(np.float32)  # 0 and 1, which alone would make it a classifier
    net.fit(X, labels, epochs=1, progress=False)
    assert net.task == "regression" and net.predict(X[:3]).shape == (3, 1)
    net.save(tmp_path / "m.npz")
    loaded = xpbp.load(tmp_path / "m.npz", device="cpu")
    assert loaded.task == "regression" and np.array_equal(loaded.predict(X), net.predict(X))
    with pytest.raises(ValueError, match="task must be one of 'classification', 'multilabel', 'regression' or None"):
        xpbp.Network([10, 1], task="ranking")


def test_models_from_before_tasks_are_classifiers():
    """The version 2 model file in tests/data (written before networks knew their task)."""
    net = xpbp.load(Path(__file__).parent / "data" / "model-v2.npz", device="cpu")
    assert net.task == "classification" and net.trained_on == "blobs:train"
    assert net.predict(np.zeros((2, 4), np.float32)).dtype == np.int64


def test_zeros_and_ones_that_are_not_one_hot_are_a_multi_label_classifier(device, rng):
    X = rng.standard_normal((300, 6)).astype(np.float32)
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], axis=1).astype(np.float32)
    net = xpbp.Network([6, 16, 3], output_activation="sigmoid", cost="cross_entropy", device=device, seed=2)
    history = net.fit(X[:200], Y[:200], epochs=15, batch_size=10, eta=0.5, validation_data=(X[200:], Y[200:]), progress=False)
    assert net.task == "multilabel"
    predicted = net.predict(X[200:])
    assert predicted.shape == (100, 3) and set(np.unique(predicted)) == {0, 1}
    assert np.array_equal(predicted, (to_numpy(net.feedforward(X[200:].T)).T >= 0.5).astype(int))
    subset = np.mean((predicted == Y[200:]).all(axis=1))
    assert history.val_accuracy[-1] == pytest.approx(subset) and net.evaluate(X[200:], Y[200:]) == pytest.approx(subset)
    assert subset > 0.7
    with pytest.raises(ValueError, match="must hold label indicators, 0 or 1, for a multi-label classifier"):
        net.fit(X, Y * 0.5, epochs=1, progress=False)


def test_scikit_learns_squared_error_reports_the_mean_over_outputs_and_trains_as_the_quadratic_cost(rng):
    x, y = rng.standard_normal((4, 7)), rng.standard_normal((3, 7))
    nets = [xpbp.Network([4, 5, 3], output_activation="identity", cost=c, dtype="float64", device="cpu", seed=1)
            for c in ("quadratic", "squared_error")]
    for a, b in zip(*(n.backprop(x, y)[0] + n.backprop(x, y)[1] for n in nets)):
        assert np.array_equal(a, b)
    assert nets[1].cost(x, y) == pytest.approx(nets[0].cost(x, y) / 3, rel=1e-15)


def test_outputs_and_probabilities_are_the_output_layer_as_rows(device):
    X, y = cancer()
    one = xpbp.Network([30, 8, 1], output_activation="sigmoid", cost="cross_entropy", device=device, seed=0)
    one.fit(X, y, epochs=2, batch_size=20, eta=0.5, progress=False)
    a = to_numpy(one.feedforward(X.T)).T
    np.testing.assert_allclose(one.outputs(X), a, rtol=1e-6)
    proba = one.predict_proba(X)
    np.testing.assert_allclose(proba, np.hstack([1 - a, a]), rtol=1e-6)
    assert np.array_equal(proba.argmax(axis=1), one.predict(X))
    two = xpbp.Network([30, 8, 2], output_activation="softmax", cost="log_likelihood", device=device, seed=0)
    two.fit(X, y, epochs=2, batch_size=20, progress=False)
    np.testing.assert_allclose(two.predict_proba(X).sum(axis=1), 1, rtol=1e-6)
    regression = xpbp.Network([30, 8, 1], output_activation="identity", device=device, seed=0, task="regression")
    with pytest.raises(ValueError, match="regression"):
        regression.predict_proba(X)
    assert regression.outputs(X).shape == (len(X), 1)


def test_the_trainers_full_batch_gradient_is_backprops_plus_the_l2_term(device, rng):
    """Trainer.gradient (what L-BFGS calls) against Network.backprop over the whole data."""
    X, y = cancer()
    net = xpbp.Network([30, 6, 2], output_activation="softmax", cost="log_likelihood", dtype="float64", device=device, seed=3)
    trainer = net.trainer(X.astype(np.float64), y, batch_size=len(X), lmbda=0.5, decay_over="batch", progress=False)
    with xpbp.backend.using(net.device), trainer.running():
        cost, grad = trainer.gradient()
        cost, grad = float(to_numpy(cost)), to_numpy(grad).copy()
    nabla_b, nabla_w = net.backprop(X.T.astype(np.float64), np.eye(2)[y].T)
    w = [to_numpy(x) for x in net.weights]
    l2 = [to_numpy(g) + 0.5 / len(X) * wl for g, wl in zip(nabla_w, w)]  # scikit-learn's α/N · w
    want = np.concatenate([g.ravel() for g in (*l2, *map(to_numpy, nabla_b))])  # θ's layout: each w, then each b
    np.testing.assert_allclose(grad, want, rtol=1e-10, atol=1e-14)
    a = to_numpy(net.feedforward(X.T.astype(np.float64)))
    data = -np.log(a[y, np.arange(len(y))]).mean()
    assert cost == pytest.approx(data + 0.5 / (2 * len(X)) * sum((wl**2).sum() for wl in w), rel=1e-12)
