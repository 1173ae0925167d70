"""xpbp.sklearn.MLPClassifier and MLPRegressor against scikit-learn's own MLP: the same
parameters after training, to rounding in float64 (from the same random_state, shuffled
and all), and scikit-learn's estimator checks."""

import pickle
import warnings

import joblib
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from conftest import GPU  # noqa: E402
from scipy import sparse  # noqa: E402
from sklearn import neural_network as reference  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xpbp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def scaled(X):
    return StandardScaler().fit_transform(X)


DIGITS = load_digits(return_X_y=True)
DIGITS = (scaled(DIGITS[0]), DIGITS[1])
CANCER = load_breast_cancer(return_X_y=True)
CANCER = (scaled(CANCER[0]), CANCER[1])
DIABETES = load_diabetes(return_X_y=True)
DIABETES = (scaled(DIABETES[0]), DIABETES[1] / 100)


def same(theirs, ours, rtol=1e-9, atol=1e-12):
    for a, b in zip(theirs.coefs_ + theirs.intercepts_, ours.coefs_ + ours.intercepts_):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == getattr(theirs, "t_", ours.t_)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    if hasattr(theirs, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


CLASSIFIER_SETTINGS = [
    {},
    {"solver": "sgd"},
    {"solver": "sgd", "nesterovs_momentum": False, "learning_rate": "invscaling", "learning_rate_init": 0.05},
    {"solver": "sgd", "momentum": 0.0, "shuffle": False, "batch_size": 32},
    {"solver": "sgd", "learning_rate": "adaptive", "n_iter_no_change": 2, "tol": 0.1},
    {"solver": "adam", "early_stopping": True, "validation_fraction": 0.2},
    {"solver": "adam", "alpha": 0.5, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "activation": "tanh"},
    {"solver": "lbfgs", "activation": "logistic"},
    {"solver": "adam", "n_iter_no_change": 1, "tol": 10.0},  # stops after 2 epochs, on the training loss
]


@pytest.mark.parametrize("settings", CLASSIFIER_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "defaults")
def test_classifier_trains_what_scikit_learn_trains(settings):
    X, y = DIGITS
    theirs = reference.MLPClassifier((24,), max_iter=6, random_state=0, **settings).fit(X, y)
    ours = MLPClassifier((24,), max_iter=6, random_state=0, **settings).fit(X, y)
    same(theirs, ours)
    assert np.array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-8, atol=1e-12)
    if settings.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_validation_score_ == theirs.best_validation_score_


def test_binary_multilabel_and_sample_weights_as_scikit_learn(rng):
    X, y = CANCER
    w = rng.uniform(0.1, 2.0, len(y))
    for solver in ("adam", "sgd", "lbfgs"):
        theirs = reference.MLPClassifier((8,), solver=solver, max_iter=5, random_state=1).fit(X, y, sample_weight=w)
        ours = MLPClassifier((8,), solver=solver, max_iter=5, random_state=1).fit(X, y, sample_weight=w)
        np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-9, atol=1e-12)
        assert ours.out_activation_ == "logistic" and ours.predict_proba(X).shape == (len(y), 2)
    Xm, Ym = make_multilabel_classification(n_samples=120, n_features=6, n_classes=4, random_state=0)
    theirs = reference.MLPClassifier((10,), max_iter=5, random_state=0).fit(Xm, Ym)
    ours = MLPClassifier((10,), max_iter=5, random_state=0).fit(Xm, Ym)
    same(theirs, ours)
    assert np.array_equal(ours.predict(Xm), theirs.predict(Xm))


@pytest.mark.parametrize("settings", [{}, {"loss": "poisson"}, {"solver": "lbfgs"}, {"solver": "sgd", "learning_rate_init": 0.01}])
def test_regressor_trains_what_scikit_learn_trains(settings):
    X, y = DIABETES
    theirs = reference.MLPRegressor(hidden_layer_sizes=(10,), max_iter=6, random_state=0, **settings).fit(X, y)
    ours = MLPRegressor(hidden_layer_sizes=(10,), max_iter=6, random_state=0, **settings).fit(X, y)
    same(theirs, ours)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-9)
    Y = np.column_stack([y, -y])  # several outputs
    theirs = reference.MLPRegressor(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit(X, Y)
    ours = MLPRegressor(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit(X, Y)
    same(theirs, ours)


def test_partial_fit_and_warm_start_go_on_as_scikit_learns_do():
    X, y = DIGITS
    runs = []
    for cls in (reference.MLPClassifier, MLPClassifier):
        est = cls((16,), max_iter=3, random_state=0).fit(X, y)
        est.partial_fit(X[:500], y[:500])
        est.set_params(warm_start=True, max_iter=2).fit(X, y)
        runs.append(est)
    same(*runs)
    fresh = [cls((16,), random_state=0).partial_fit(X, y, classes=np.unique(y)) for cls in (reference.MLPClassifier, MLPClassifier)]
    same(*fresh)


def test_the_strict_device_trains_the_same():
    X, y = DIGITS
    cpu = MLPClassifier((16,), max_iter=3, random_state=0).fit(X, y)
    strict = MLPClassifier((16,), max_iter=3, random_state=0, device="strict").fit(X, y)
    same(cpu, strict, rtol=1e-12)


@pytest.mark.parametrize("device", ["strict", pytest.param("cuda", marks=GPU)])
def test_device_arrays_in_give_device_arrays_out(device):
    from xpbp import backend

    X, y = DIGITS
    on = lambda a: backend.to_device(a, device)  # noqa: E731
    here = backend.canonical(device)
    cpu = MLPClassifier((16,), max_iter=3, random_state=0).fit(X, y)
    ours = MLPClassifier((16,), max_iter=3, random_state=0, device=device).fit(on(X), on(y))
    same(cpu, ours, rtol=1e-12 if device == "strict" else 1e-9)
    for method in ("predict", "predict_proba", "predict_log_proba"):
        out = getattr(ours, method)(on(X))
        assert backend.device_of(out) == here, method  # where the rows came from
        exact = dict(rtol=0, atol=0) if device == "strict" else dict(rtol=1e-6, atol=1e-9)  # a GPU sums in its own order
        np.testing.assert_allclose(backend.to_numpy(out), getattr(cpu, method)(X), **exact)
    assert isinstance(ours.predict(X), np.ndarray)  # NumPy in, NumPy out
    assert ours.score(on(X), on(y)) == pytest.approx(cpu.score(X, y), abs=0.01)
    ours.partial_fit(on(X), on(y))
    cpu.partial_fit(X, y)
    same(cpu, ours, rtol=1e-12 if device == "strict" else 1e-9)
    names = np.array(["even", "odd"])[y % 2]  # string labels come back as NumPy arrays
    labelled = MLPClassifier((8,), max_iter=2, random_state=0, device=device).fit(on(X), names)
    assert labelled.predict(on(X)).dtype.kind == "U"
    Xr, yr = DIABETES
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0, device=device).fit(on(Xr), on(yr))
    ref = MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(Xr, yr)
    assert backend.device_of(reg.predict(on(Xr))) == here
    assert np.allclose(backend.to_numpy(reg.predict(on(Xr))), ref.predict(Xr), rtol=1e-12 if device == "strict" else 1e-9)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")  # as scikit-learn's, for L-BFGS


def test_float32_strings_sparse_and_dropout():
    X, y = DIGITS
    f32 = MLPClassifier((16,), max_iter=3, random_state=0).fit(X.astype(np.float32), y)
    assert f32.coefs_[0].dtype == np.float32 and f32.predict_proba(X.astype(np.float32)).dtype == np.float32
    names = np.array(list("abcdefghij"))[y]
    labelled = MLPClassifier((16,), max_iter=3, random_state=0).fit(X, names)
    assert set(labelled.predict(X)) <= set(names) and list(labelled.classes_) == list("abcdefghij")
    dense = MLPClassifier((16,), max_iter=3, random_state=0).fit(X, y)
    thin = MLPClassifier((16,), max_iter=3, random_state=0).fit(sparse.csr_matrix(X), y)
    same(dense, thin, rtol=1e-12)
    dropped = MLPClassifier((16,), max_iter=3, random_state=0, dropout=0.5).fit(X, y)
    assert not np.allclose(dropped.coefs_[0], dense.coefs_[0])  # dropout changes what is trained
    with pytest.raises(ValueError, match="dropout needs a stochastic solver"):
        MLPClassifier(solver="lbfgs", dropout=0.5).fit(X, y)


def test_pipelines_grid_search_clone_pickle_and_joblib(tmp_path):
    X, y = load_digits(return_X_y=True)
    searches = [
        GridSearchCV(make_pipeline(StandardScaler(), cls(max_iter=5, random_state=0)), {"mlpclassifier__alpha": [1e-4, 1.0]}, cv=2).fit(X, y)
        for cls in (reference.MLPClassifier, MLPClassifier)
    ]
    np.testing.assert_allclose(searches[1].cv_results_["mean_test_score"], searches[0].cv_results_["mean_test_score"])
    search = searches[1]
    est = search.best_estimator_[-1]
    assert clone(est).get_params() == est.get_params() and not hasattr(clone(est), "coefs_")
    Xs = search.best_estimator_[0].transform(X)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(Xs), est.predict_proba(Xs))
    joblib.dump(est, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict_proba(Xs), est.predict_proba(Xs))


def test_the_same_misuse_gets_the_same_error():
    X, y = DIGITS
    for bad in ({"solver": "newton"}, {"momentum": 1.5}, {"hidden_layer_sizes": (0,)}, {"early_stopping": True, "validation_fraction": 0.0001}):
        errors = []
        for cls in (reference.MLPClassifier, MLPClassifier):
            with pytest.raises(ValueError) as e:
                cls(max_iter=1, **bad).fit(X[:100], y[:100])
            errors.append(str(e.value).replace("xpbp.sklearn.", ""))
        assert errors[0] == errors[1]
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.unique(y))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        MLPClassifier((8,), max_iter=1).fit(X, y)
    assert any(issubclass(w.category, ConvergenceWarning) for w in seen)


@parametrize_with_checks([MLPClassifier(random_state=0), MLPRegressor(random_state=0)])  # the defaults: smaller networks fail scikit-learn's own MLP too
def test_scikit_learn_estimator_checks(estimator, check):
    # No check is marked as an expected failure: every one of them must pass.
    check(estimator)


def _bits(a, b):
    return all(np.array_equal(x, y) for x, y in zip([*a.coefs_, *a.intercepts_], [*b.coefs_, *b.intercepts_]))


@pytest.mark.parametrize(
    "cls, data, settings",
    [
        (MLPClassifier, DIGITS, dict(solver="adam")),
        (MLPClassifier, DIGITS, dict(solver="sgd", learning_rate="adaptive", n_iter_no_change=1, tol=0.5)),
        (MLPClassifier, CANCER, dict(solver="adam", early_stopping=True, dropout=0.2)),
        (MLPRegressor, DIABETES, dict(solver="sgd", learning_rate="invscaling", device="strict")),
    ],
)
def test_a_fit_resumed_from_its_checkpoint_ends_where_an_unbroken_one_does(tmp_path, cls, data, settings):
    X, y = data
    path = tmp_path / "run.npz"
    make = lambda **more: cls(hidden_layer_sizes=(8,), random_state=0, batch_size=50, **settings, **more)  # noqa: E731
    unbroken = make(max_iter=6).fit(X, y)
    first = make(max_iter=3, checkpoint=str(path)).fit(X, y)  # stops after 3 epochs, as a crash would
    assert first.n_iter_ == 3 and path.exists()
    resumed = make(max_iter=6, checkpoint=str(path), resume=True).fit(X, y)  # a new estimator, as after a restart
    assert resumed.n_iter_ == unbroken.n_iter_ and resumed.t_ == unbroken.t_
    assert resumed.loss_curve_ == unbroken.loss_curve_ and _bits(resumed, unbroken)
    if settings.get("early_stopping"):
        assert resumed.validation_scores_ == unbroken.validation_scores_
    again = make(max_iter=6, checkpoint=str(path), resume=True).fit(X, y)  # a finished run: nothing more to do
    assert again.n_iter_ == unbroken.n_iter_ and _bits(again, unbroken)
    fresh = make(max_iter=6, checkpoint=str(tmp_path / "none.npz"), resume=True).fit(X, y)  # no file yet: from the start
    assert _bits(fresh, unbroken)


def test_a_checkpoint_of_another_run_is_refused_before_training(tmp_path):
    X, y = DIGITS
    path = tmp_path / "run.npz"
    MLPClassifier((8,), max_iter=2, random_state=0, checkpoint=str(path)).fit(X, y)
    saved = path.read_bytes()
    with pytest.raises(ValueError, match=r"run.npz is a checkpoint of another run: its settings differ"):
        MLPClassifier((8,), max_iter=4, alpha=0.1, random_state=0, checkpoint=str(path), resume=True).fit(X, y)
    with pytest.raises(ValueError, match=r"its data differ"):
        MLPClassifier((8,), max_iter=4, random_state=0, checkpoint=str(path), resume=True).fit(X[::-1], y[::-1])
    with pytest.raises(ValueError, match=r"its settings differ"):
        MLPClassifier((9,), max_iter=4, random_state=0, checkpoint=str(path), resume=True).fit(X, y)
    assert path.read_bytes() == saved  # refused before any epoch rewrote it
    with pytest.raises(ValueError, match="resume=True needs checkpoint=PATH"):
        MLPClassifier(resume=True).fit(X, y)
    with pytest.raises(ValueError, match="checkpoint needs a stochastic solver"):
        MLPClassifier(solver="lbfgs", checkpoint=str(path)).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit writes no checkpoint"):
        MLPClassifier(checkpoint=str(path)).partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(ValueError, match=r"its data differ"):  # other sample weights are other data
        MLPClassifier((8,), max_iter=4, random_state=0, checkpoint=str(path), resume=True).fit(
            X, y, sample_weight=np.linspace(0.1, 5, len(y)))
    with pytest.raises(ValueError, match=r"after epoch 2, past max_iter=1: give max_iter at least as large"):
        MLPClassifier((8,), max_iter=1, random_state=0, checkpoint=str(path), resume=True).fit(X, y)
    with pytest.raises(ValueError, match="resume=True goes on from the checkpoint, warm_start=True from"):
        MLPClassifier((8,), random_state=0, warm_start=True, checkpoint=str(path), resume=True).fit(X, y)
    with pytest.raises(ValueError, match="checkpoints of a data-parallel fit"):
        MLPClassifier((8,), random_state=0, comm=object(), checkpoint=str(path)).fit(X, y)
    assert path.read_bytes() == saved
    (tmp_path / "model.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="model.npz is not a valid"):
        MLPClassifier((8,), random_state=0, checkpoint=str(tmp_path / "model.npz"), resume=True).fit(X, y)


def test_numpy_numbers_in_the_settings_are_told_apart(tmp_path):
    X, y = DIGITS
    path = tmp_path / "run.npz"
    MLPClassifier((8,), max_iter=2, batch_size=np.int64(32), random_state=0, checkpoint=str(path)).fit(X, y)
    with pytest.raises(ValueError, match="its settings differ"):  # 128 is not 32, though both are int64s
        MLPClassifier((8,), max_iter=3, batch_size=np.int64(128), random_state=0, checkpoint=str(path), resume=True).fit(X, y)


def test_a_finished_run_resumed_warns_as_its_last_epoch_did(tmp_path):
    X, y = DIGITS
    path = tmp_path / "run.npz"
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier((8,), max_iter=2, random_state=0, checkpoint=str(path)).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier((8,), max_iter=2, random_state=0, checkpoint=str(path), resume=True).fit(X, y)


def test_a_damaged_checkpoint_header_is_named(tmp_path):
    import json as json_

    from xpbp import files

    X, y = DIGITS
    path = tmp_path / "run.npz"
    for header in ([1, 2], {"settings": "x"}):
        files.write(path, "xpbp MLP checkpoint", 1, {"header": np.frombuffer(json_.dumps(header).encode(), dtype=np.uint8)})
        with pytest.raises(ValueError, match="run.npz is not a valid xpbp MLP checkpoint: its header lacks"):
            MLPClassifier((8,), random_state=0, checkpoint=str(path), resume=True).fit(X, y)
    files.write(path, "xpbp MLP checkpoint", 1, {})
    with pytest.raises(ValueError, match="'header' is missing"):
        MLPClassifier((8,), random_state=0, checkpoint=str(path), resume=True).fit(X, y)
