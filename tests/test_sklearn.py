"""xpbp.sklearn.XPBPClassifier against scikit-learn's own estimator checks."""

import pickle

import numpy as np
import pytest

import xpbp

sklearn = pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xpbp.sklearn import XPBPClassifier  # noqa: E402


def small(**kwargs):
    """A network small and quick enough for the ~40 checks, on the CPU so that results
    do not depend on which machine runs them."""
    return XPBPClassifier(hidden_layer_sizes=(16,), epochs=20, device="cpu", random_state=0, **kwargs)


@parametrize_with_checks([small(), small(cost="cross_entropy"), small(activation="tanh", cost="quadratic", eta=0.5)])
def test_scikit_learn_estimator_checks(estimator, check):
    # No check is marked as an expected failure: every one of them must pass.
    check(estimator)


def test_arbitrary_labels_probabilities_and_pickling(rng):
    X = rng.standard_normal((90, 3))
    names = np.array(["cat", "dog", "eel"])
    y = names[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]
    clf = XPBPClassifier(hidden_layer_sizes=(12,), epochs=60, device="cpu", random_state=1).fit(X, y)
    assert list(clf.classes_) == ["cat", "dog", "eel"]
    proba = clf.predict_proba(X)
    assert proba.shape == (90, 3) and np.allclose(proba.sum(axis=1), 1)
    assert set(clf.predict(X)) <= set(names) and clf.score(X, y) > 0.85
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict_proba(X), proba)
    assert clf.get_params()["hidden_layer_sizes"] == (12,)
    assert clf.set_params(eta=0.3).eta == 0.3


def test_same_random_state_same_model(rng):
    X = rng.standard_normal((40, 4))
    y = (X.sum(axis=1) > 0).astype(int)
    a = XPBPClassifier(epochs=3, device="cpu", random_state=7).fit(X, y).predict_proba(X)
    b = XPBPClassifier(epochs=3, device="cpu", random_state=7).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)


def test_bad_cost_is_named(rng):
    with pytest.raises(ValueError, match="cost must be one of"):
        XPBPClassifier(cost="hinge", device="cpu").fit(rng.standard_normal((5, 2)), [0, 1, 0, 1, 0])


def test_one_hidden_layer_may_be_given_as_an_int(rng):
    X = rng.standard_normal((30, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = XPBPClassifier(hidden_layer_sizes=8, epochs=2, device="cpu", random_state=0).fit(X, y)
    assert clf.network_.sizes == [3, 8, 2]
    with pytest.raises(ValueError, match="hidden_layer_sizes must be an int or a sequence of ints, got 'eight'"):
        XPBPClassifier(hidden_layer_sizes="eight", device="cpu").fit(X, y)


def test_probabilities_are_never_computed_from_overflowed_outputs(rng):
    X = rng.standard_normal((30, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = XPBPClassifier(hidden_layer_sizes=(8,), activation="relu", epochs=1, dtype="float32", device="cpu",
                         random_state=0).fit(X, y)
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(ValueError, match="NaN or Inf"):
        clf.predict_proba(np.full((1, 4), 3.4e38, np.float32))


@pytest.mark.skipif(xpbp.backend.cuda_available(), reason="shows what happens where CUDA is not usable")
def test_a_classifier_pickled_on_a_gpu_unpickles_on_a_cpu_only_machine(rng, monkeypatch):
    X = rng.standard_normal((30, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = XPBPClassifier(hidden_layer_sizes=(4,), epochs=2, device="cpu", random_state=0).fit(X, y)
    getstate = xpbp.Network.__getstate__
    monkeypatch.setattr(xpbp.Network, "__getstate__", lambda net: {**getstate(net), "device": "cuda:0"})
    payload = pickle.dumps(clf)  # as if it had been trained on a GPU
    monkeypatch.undo()
    with pytest.warns(RuntimeWarning, match="a network pickled on cuda:0 is loaded on the CPU: .*CUDA"):
        back = pickle.loads(payload)
    assert back.network_.device == "cpu" and np.array_equal(back.predict_proba(X), clf.predict_proba(X))
