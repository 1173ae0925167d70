"""Training, scoring, predicting and exporting on a user's own files: the command line
on scikit-learn's bundled data sets written as CSV, and the model's scaling and labels
checked against scikit-learn's StandardScaler and the file itself; the ONNX graph
against xpbp's own outputs, in onnxruntime."""

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from test_cli import no_training, one_line_error, run

import xpbp
from xpbp import draws, scaling, tables


def write_cancer(path):
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})  # string labels, as users' files have
    frame.to_csv(path, index=False)
    return frame


def write_diabetes(path):
    frame = load_diabetes(as_frame=True, scaled=False).frame  # unscaled: ages, BMI, blood pressure...
    frame.to_csv(path, index=False)
    return frame


def test_train_evaluate_predict_on_an_unscaled_csv(tmp_path):
    data, model, out = tmp_path / "cancer.csv", tmp_path / "m.npz", tmp_path / "p.csv"
    frame = write_cancer(data)
    r = run("train", "--data", str(data), "--seed", "1", "--device", "cpu", "--save", str(model), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["network"]["sizes"] == [30, 100, 1] and result["network"]["output_activation"] == "sigmoid"
    assert result["network"]["task"] == "classification" and result["training"]["optimizer"] == "adam"
    assert result["test_examples"] == 113 and result["test_accuracy"] >= 0.95  # 37% unscaled before --scale existed
    # The test rows are the stratified 0.2 the seed draws; the scaling is fitted on the others alone.
    table = tables.read(data)
    train, test = draws.split(1, len(table.X), 0.2, table.y, stream=draws.TEST)
    assert len(test) == 113
    net = xpbp.load(model, device="cpu")
    want = StandardScaler().fit(table.X[train])
    assert np.allclose(net.scaling.offset, want.mean_, rtol=1e-12) and np.allclose(net.scaling.scale, want.scale_, rtol=1e-12)
    assert net.classes == ("benign", "malignant")
    assert net.evaluate(table.X[test], table.y[test]) == pytest.approx(result["test_accuracy"], abs=1e-12)
    # evaluate and predict on the file, in its own labels
    r = run("evaluate", str(model), "--data", str(data), "--json")
    assert r.returncode == 0, r.stderr
    scored = json.loads(r.stdout)
    assert scored["classes"] == ["benign", "malignant"] and np.sum(scored["confusion_matrix"]) == 569
    r = run("predict", str(model), "--data", str(data), "--out", str(out), "--proba")
    assert r.returncode == 0, r.stderr
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["prediction", "p_benign", "p_malignant"] and len(rows) == 570
    predicted = [row[0] for row in rows[1:]]
    assert np.mean(np.array(predicted) == frame["target"].to_numpy()) == pytest.approx(scored["accuracy"], abs=1e-12)
    p = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    assert np.allclose(p, net.predict_proba(table.X), atol=1e-6)
    assert all(("malignant" if b[1] >= 0.5 else "benign") == c for b, c in zip(p, predicted))
    # export: the scaling goes into the graph, which onnxruntime runs on the unscaled rows
    ort = pytest.importorskip("onnxruntime")
    r = run("export", str(model), str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stderr
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    label, proba = session.run(["label", "probabilities"], {"x": table.X.astype(np.float32)})
    assert np.abs(proba - net.predict_proba(table.X)).max() < 1e-5
    clear = np.abs(proba[:, 1] - 0.5) > 1e-5  # float32 rounding may tip a probability of 0.5 either way
    assert np.array_equal(np.array(net.classes)[label][clear], np.array(predicted)[clear]) and clear.mean() > 0.99


def test_a_regression_on_file_reports_rmse_and_r2_in_the_targets_units(tmp_path):
    data, model, out = tmp_path / "diabetes.csv", tmp_path / "m.npz", tmp_path / "p.csv"
    frame = write_diabetes(data)
    r = run("train", "--data", str(data), "--seed", "2", "--device", "cpu", "--dtype", "float64", "--save", str(model), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["network"]["task"] == "regression" and result["test_accuracy"] is None
    assert set(result["test_metrics"]) == {"cost", "rmse", "r2"} and result["test_metrics"]["r2"] > 0.3
    net = xpbp.load(model, device="cpu")
    table = tables.read(data)
    _, test = draws.split(2, len(table.X), 0.2, None, stream=draws.TEST)
    predicted = net.predict(table.X[test]).ravel()
    y = frame["target"].to_numpy()[test]
    rmse = np.sqrt(np.mean((predicted - y) ** 2))
    r2 = 1 - np.sum((predicted - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert result["test_metrics"]["rmse"] == pytest.approx(rmse, rel=1e-9)
    assert result["test_metrics"]["r2"] == pytest.approx(r2, rel=1e-9)
    r = run("predict", str(model), "--data", str(data), "--out", str(out))
    assert r.returncode == 0, r.stderr
    written = pd.read_csv(out)["prediction"].to_numpy()
    assert np.allclose(written, net.predict(table.X).ravel(), rtol=1e-12)


def test_a_test_file_and_minmax_scaling(tmp_path):
    X, y = load_wine(return_X_y=True)
    names = [f"f{i}" for i in range(13)]
    for part, rows in (("train", slice(0, 140)), ("test", slice(140, None))):
        pd.DataFrame(X[rows], columns=names).assign(kind=y[rows]).to_csv(tmp_path / f"{part}.csv", index=False)
    model = tmp_path / "m.npz"
    r = run("train", "--data", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"), "--target", "kind",
            "--scale", "minmax", "--hidden", "16,8", "--seed", "1", "--device", "cpu", "--save", str(model), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["network"]["sizes"] == [13, 16, 8, 3] and result["test_examples"] == len(X) - 140
    net = xpbp.load(model, device="cpu")
    want = MinMaxScaler().fit(X[:140])
    assert np.allclose(net.scaling.apply(X[140:]), want.transform(X[140:]), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{d}", "--dataset", "mnist"], "either --dataset .* or --data"),
        (["--data", "{d}", "--test-fraction", "1.5"], "--test-fraction must be between 0 and 1"),
        (["--data", "{d}", "--sizes", "30,5,1"], "give the hidden layers with --hidden"),
        (["--data", "{d}", "--target", "nope"], "has no column 'nope'"),
        (["--data", "{d}", "--shift", "1"], "--shift and --mirror .* MNIST-family"),
        (["--data", "{d}", "--save", "{t}/no/such/dir/m.npz"], "no such directory"),
        (["--target", "x"], "--target, --test, --test-fraction and --task are for a file of your own"),
        (["--data", "{t}/absent.csv"], "--data .*absent.csv: no such file"),
    ],
)
def test_file_options_are_checked_before_any_work(args, message, tmp_path):
    write_cancer(tmp_path / "c.csv")
    args = [a.format(d=tmp_path / "c.csv", t=tmp_path) for a in args]
    r = run("train", *args, "--device", "cpu")
    one_line_error(r, 1, message)
    no_training(r)


def test_predict_and_evaluate_refuse_what_does_not_fit_the_model(tmp_path):
    write_cancer(tmp_path / "c.csv")
    model = tmp_path / "m.npz"
    assert run("train", "--data", str(tmp_path / "c.csv"), "--epochs", "2", "--save", str(model), "--device", "cpu").returncode == 0
    pd.DataFrame(np.ones((3, 5))).to_csv(tmp_path / "narrow.csv", index=False)
    one_line_error(run("predict", str(model), "--data", str(tmp_path / "narrow.csv"), "--out", str(tmp_path / "p.csv")),
                   1, "has 5 columns, and the network takes 30 features")
    assert not (tmp_path / "p.csv").exists()
    one_line_error(run("predict", str(model), "--data", str(tmp_path / "c.csv"), "--out", str(tmp_path / "p.txt")), 1, "ending in .csv")
    frame = pd.read_csv(tmp_path / "c.csv")
    frame.loc[3, "target"] = "unknown"
    frame.to_csv(tmp_path / "odd.csv", index=False)
    one_line_error(run("evaluate", str(model), "--data", str(tmp_path / "odd.csv")), 1,
                   r"row 4, column 'target': label 'unknown' is not one of the 2 classes")


def test_features_far_from_unit_scale_are_warned_about():
    X, y = load_breast_cancer(return_X_y=True)
    net = xpbp.Network([30, 8, 1], output_activation="sigmoid", cost="cross_entropy", device="cpu", seed=0)
    with pytest.warns(scaling.ScaleWarning, match=r"\|x\| = 4.25e\+03: .*Scale them first"):
        net.fit(X, y, epochs=1, progress=False)
    net.scaling = scaling.fit(X, "standard")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.fit(X, y, epochs=1, progress=False)  # scaled by the network itself: no warning
    spread = np.ones((50, 3))
    spread[:, :2] = np.linspace(0, 0.1, 50)[:, None]
    spread[:, 2] = np.linspace(0, 900, 50)  # |x| ≤ 1e3, but 9,000 times the median column's spread
    with pytest.warns(scaling.ScaleWarning, match="standard deviation is 9e\\+03 times the median"):
        xpbp.Network([3, 2, 2], device="cpu", seed=0).fit(spread, np.arange(50) % 2, epochs=1, progress=False)
    rows = np.random.default_rng(0).standard_normal((100_000, 3))
    rows[50_001::97, 2] *= 1e5  # one row in 97 of the second half far out: the check's 1,024 rows spread through X see them
    with pytest.warns(scaling.ScaleWarning, match=r"\|x\| = "):
        scaling.check(rows, np)
    image_like = np.zeros((50, 3))
    image_like[:, :2] = np.linspace(0, 1, 50)[:, None]
    image_like[0, 2] = 1e-4  # a border pixel that is nearly always 0: no harm, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xpbp.Network([3, 2, 2], device="cpu", seed=0).fit(image_like, np.arange(50) % 2, epochs=1, progress=False)


def test_a_networks_scaling_labels_and_target_scaling_survive_a_save(tmp_path):
    X, y = load_diabetes(return_X_y=True, scaled=False)
    net = xpbp.Network([10, 8, 1], activation="relu", output_activation="identity", cost="squared_error", device="cpu",
                       dtype="float64", seed=0)
    net.scaling = scaling.fit(X, "standard")
    net.target_scaling = scaling.fit(y.reshape(-1, 1), "standard")
    net.fit(X, y, epochs=20, batch_size=32, optimizer="adam", eta=0.01, progress=False)
    net.save(tmp_path / "m.npz")
    back = xpbp.load(tmp_path / "m.npz", device="cpu")
    assert np.array_equal(back.predict(X), net.predict(X))
    assert back.target_scaling.offset == pytest.approx([y.mean()]) and back.target_scaling.scale == pytest.approx([y.std()])
    # the network's own outputs are of the scaled targets; predict undoes the scaling
    assert np.allclose(net.predict(X).ravel(), net.outputs(X).ravel() * y.std() + y.mean(), rtol=1e-12)
    with pytest.raises(ValueError, match="not ONNX: .*to_onnx"):
        net.save(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "hidden, output, cost, n_out, task",
    [
        ("sigmoid", "softmax", "log_likelihood", 3, "classification"),
        ("tanh", "sigmoid", "cross_entropy", 1, "classification"),
        ("relu", "sigmoid", "cross_entropy", 3, "multilabel"),
        ("identity", "tanh", "quadratic", 2, "regression"),
        ("relu", "relu", "quadratic", 2, "regression"),
        ("tanh", "identity", "squared_error", 2, "regression"),
        ("sigmoid", "exp", "poisson", 1, "regression"),
    ],
)
@pytest.mark.parametrize("scaled", [False, True])
def test_onnxruntime_computes_what_xpbp_computes(tmp_path, hidden, output, cost, n_out, task, scaled):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6)) * [1, 10, 100, 0.1, 1, 5] + [0, 50, -20, 0, 3, 0]
    net = xpbp.Network([6, 9, 7, n_out], activation=hidden, output_activation=output, cost=cost, device="cpu", seed=1, task=task)
    if scaled:
        net.scaling = scaling.fit(X, "standard")
        if task == "regression":
            net.target_scaling = scaling.Scaling("standard", rng.standard_normal(n_out), rng.uniform(1, 5, n_out))
    Xin = X if scaled else X / 100  # unscaled, kept where the outputs are not saturated
    net.to_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": Xin.astype(np.float32)})))
    if task == "regression":
        assert np.allclose(got["predictions"], net.predict(Xin).reshape(200, -1), rtol=1e-5, atol=1e-5)
        return
    want = net.predict_proba(Xin)
    assert np.abs(got["probabilities"] - want).max() < 1e-5
    if task == "classification":
        assert np.array_equal(got["label"], net.predict(Xin))


def docs_forward():
    """The NumPy forward pass printed in docs/model-file.md, as a function."""
    text = (Path(__file__).parent.parent / "docs" / "model-file.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 12  # short enough to read and copy
    space = {}
    exec(code, space)
    return space["forward"]


@pytest.mark.parametrize(
    "hidden, output, cost, n_out, task",
    [
        ("sigmoid", "softmax", "log_likelihood", 3, "classification"),
        ("tanh", "sigmoid", "cross_entropy", 1, "classification"),
        ("relu", "identity", "squared_error", 2, "regression"),
        ("identity", "exp", "poisson", 1, "regression"),
    ],
)
def test_the_documented_numpy_forward_pass_reads_the_model_file(tmp_path, hidden, output, cost, n_out, task):
    forward = docs_forward()
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 5)) * 20 + 7
    net = xpbp.Network([5, 6, 4, n_out], activation=hidden, output_activation=output, cost=cost, dtype="float64",
                       device="cpu", seed=2, task=task)
    net.scaling = scaling.fit(X, "standard")
    if task == "regression":
        net.target_scaling = scaling.Scaling("standard", rng.standard_normal(n_out), rng.uniform(1, 3, n_out))
    net.save(tmp_path / "m.npz")
    got = forward(tmp_path / "m.npz", X)
    want = net.predict(X).reshape(50, -1) if task == "regression" else net.outputs(X)
    assert np.allclose(got, want, rtol=1e-12, atol=1e-14)


def test_unscaled_features_get_a_one_line_warning_naming_the_remedy(tmp_path):
    write_cancer(tmp_path / "c.csv")
    r = run("train", "--data", str(tmp_path / "c.csv"), "--scale", "none", "--epochs", "1", "--device", "cpu", "-q",
            env={"PYTHONWARNINGS": "default"})
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: a feature reaches |x| = 3.43e+03")  # the training rows' largest area and "--scale standard" in lines[0]
    r = run("train", "--data", str(tmp_path / "c.csv"), "--epochs", "1", "--device", "cpu", "-q", env={"PYTHONWARNINGS": "default"})
    assert r.returncode == 0 and r.stderr == "", r.stderr  # scaled by default: no warning


def test_distributed_without_a_launcher_says_so():
    r = run("train", "--distributed", "mpi", "--epochs", "1", "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    assert "note: --distributed mpi runs on this one process, since no launcher started others" in r.stderr


def test_the_python_example_of_the_docs_runs(tmp_path, monkeypatch):
    write_cancer(tmp_path / "cancer.csv")
    text = (Path(__file__).parent.parent / "docs" / "own-data.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    space = {}
    exec(code.replace('optimizer="adam")', 'optimizer="adam", progress=False)'), space)
    net, table = space["net"], space["table"]
    assert net.evaluate(table.X, table.y) > 0.95 and set(space["labels"]) == {"benign", "malignant"}
    assert xpbp.load("cancer.npz").classes == ("benign", "malignant") and (tmp_path / "cancer.onnx").stat().st_size > 0


def test_a_scaled_network_trains_and_predicts_alike_on_every_device(device):
    X, y = load_diabetes(return_X_y=True, scaled=False)
    runs = []
    for on in ("cpu", device):
        net = xpbp.Network([10, 8, 1], activation="tanh", output_activation="identity", cost="squared_error", device=on,
                           dtype="float64", seed=0)
        net.scaling, net.target_scaling = scaling.fit(X, "standard"), scaling.fit(y.reshape(-1, 1), "standard")
        net.fit(X, y, epochs=3, batch_size=40, optimizer="adam", eta=0.01, progress=False)
        runs.append((net.predict(X), net.metrics(X, y)))
    (p, m), (q, n) = runs
    if device == "cuda":
        assert np.allclose(p, q, rtol=1e-10) and m == pytest.approx(n, rel=1e-10)
    else:
        assert np.array_equal(p, q) and m == n


def test_a_small_file_trains_with_a_validation_split_by_default(tmp_path):
    X, y = load_wine(return_X_y=True)  # 178 rows: 142 to train on, 14 of them held out for validation
    pd.DataFrame(X).assign(kind=y).to_csv(tmp_path / "wine.csv", index=False)
    r = run("train", "--data", str(tmp_path / "wine.csv"), "--validation-fraction", "0.1", "--epochs", "2", "--seed", "1",
            "--device", "cpu", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    train, _ = draws.split(1, 178, 0.2, y, stream=draws.TEST)
    assert result["training"]["batch_size"] == len(train) - draws.held_out(len(train), 0.1, y[train]) < 200


def test_a_model_without_class_labels_is_scored_on_its_class_indices(tmp_path):
    X, y = load_wine(return_X_y=True)
    net = xpbp.Network([13, 16, 3], output_activation="softmax", cost="log_likelihood", device="cpu", seed=0)
    net.scaling = scaling.fit(X, "standard")
    net.fit(X, y, epochs=5, progress=False)  # trained from Python on indices: no labels kept
    assert net.classes is None
    net.save(tmp_path / "m.npz")
    rows = y > 0  # a file holding classes 1 and 2 only: still classes 1 and 2, not 0 and 1
    pd.DataFrame(X[rows]).assign(kind=y[rows]).to_csv(tmp_path / "part.csv", index=False)
    r = run("evaluate", str(tmp_path / "m.npz"), "--data", str(tmp_path / "part.csv"), "--json")
    assert r.returncode == 0, r.stderr
    scored = json.loads(r.stdout)
    assert scored["classes"] == ["0", "1", "2"] and np.asarray(scored["confusion_matrix"])[0].sum() == 0
    assert scored["accuracy"] == pytest.approx(np.mean(net.predict(X[rows]) == y[rows]), abs=1e-12)
    assert scored["accuracy"] > 0.5


def test_a_test_file_is_scored_in_the_training_files_classes(tmp_path):
    frame = write_cancer(tmp_path / "train.csv")
    frame[frame["target"] == "malignant"].iloc[:40].to_csv(tmp_path / "test.csv", index=False)  # one class only
    model = tmp_path / "m.npz"
    r = run("train", "--data", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"), "--epochs", "20",
            "--seed", "1", "--device", "cpu", "--save", str(model), "--json")
    assert r.returncode == 0, r.stderr
    net, test = xpbp.load(model, device="cpu"), tables.read(tmp_path / "test.csv", classes=("benign", "malignant"))
    assert test.y.tolist() == [1] * 40  # malignant is class 1, as in the training file, not class 0 of the test file
    assert json.loads(r.stdout)["test_accuracy"] == pytest.approx(np.mean(net.predict(test.X) == test.y), abs=1e-12)


def test_trainer_and_the_validation_scores_use_the_networks_scalings(tmp_path):
    X, y = load_diabetes(return_X_y=True, scaled=False)
    net = xpbp.Network([10, 8, 1], activation="relu", output_activation="identity", cost="squared_error", device="cpu",
                       dtype="float64", seed=0)
    net.scaling, net.target_scaling = scaling.fit(X[:350], "standard"), scaling.fit(y[:350].reshape(-1, 1), "standard")
    trainer = net.trainer(X[:350], y[:350], epochs=1)
    assert np.allclose(trainer.plan.data.train.X, net.scaling.apply(X[:350]), rtol=1e-12)
    assert np.allclose(trainer.plan.data.train.targets.Y.ravel(), (y[:350] - y[:350].mean()) / y[:350].std(), rtol=1e-12)
    history = net.fit(X[:350], y[:350], epochs=3, batch_size=32, optimizer="adam", eta=0.01,
                      validation_data=(X[350:], y[350:]), progress=False)
    scores = net.metrics(X[350:], y[350:])  # in the targets' units
    assert history.val_rmse[-1] == pytest.approx(scores["rmse"], rel=1e-9) and scores["rmse"] > 10
    assert history.val_r2[-1] == pytest.approx(scores["r2"], rel=1e-9)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(classes=np.array(["a", "b", "c"])), "it has 3 class labels for an output layer of 2"),
        (dict(classes=np.array(["a", "a"])), "classes must be two or more distinct labels"),
        (dict(classes=np.array(["a"])), "classes must be two or more distinct labels"),
        (dict(scaling_scale=None), "its scaling lacks scaling_scale"),
        (dict(scaling=None, scaling_offset=None), "its scaling lacks scaling, scaling_offset"),
        (dict(scaling_scale=np.zeros(4)), "its scale finite and positive"),
        (dict(scaling_offset=np.array([0.0, np.nan, 0.0, 0.0])), "offset must be finite"),
        (dict(scaling=np.array("robust")), "scaling must be one of 'standard', 'minmax'"),
        (dict(target_offset=np.zeros(2)), "its target scaling lacks target_scale"),
    ],
)
def test_a_model_file_with_bad_labels_or_scalings_is_refused(tmp_path, change, message):
    X = np.random.default_rng(0).standard_normal((40, 4))
    net = xpbp.Network([4, 3, 2], output_activation="softmax", cost="log_likelihood", device="cpu", seed=0)
    net.scaling, net.classes = scaling.fit(X, "standard"), ("no", "yes")
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        members = dict(archive)
    assert members["classes"].tolist() == ["no", "yes"]  # one label per output class, as saved
    for key, value in change.items():
        members.pop(key) if value is None else members.__setitem__(key, value)
    np.savez(tmp_path / "bad.npz", **members)
    with pytest.raises(ValueError, match=message):
        xpbp.load(tmp_path / "bad.npz", device="cpu")
    assert xpbp.load(tmp_path / "m.npz", device="cpu").classes == ("no", "yes")


def test_scaling_fit_leaves_constant_columns_and_warns_at_its_thresholds():
    X = np.column_stack([np.full(20, 7.0), np.arange(20.0)])
    for kind in ("standard", "minmax"):
        assert scaling.fit(X, kind).scale[0] == 1.0  # a constant column: shifted, not divided by 0
    steady = np.column_stack([np.linspace(-1, 1, 50)] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaling.check(np.where(np.arange(50)[:, None] == 0, 1e3, steady), np)  # |x| = 1e3 exactly: no warning
        scaling.check(steady + 900.0, np)  # a large mean with a small spread, below 1e3: no warning
    with pytest.warns(scaling.ScaleWarning, match=r"\|x\| = 1e\+03"):
        scaling.check(np.where(np.arange(50)[:, None] == 0, -1000.5, steady), np)  # a negative one counts too


def test_scoring_a_model_on_its_own_training_file_is_warned_about(tmp_path):
    frame = write_cancer(tmp_path / "cancer.csv")
    model = tmp_path / "m.npz"
    assert run("train", "--data", str(tmp_path / "cancer.csv"), "--epochs", "2", "--save", str(model),
               "--device", "cpu").returncode == 0
    r = run("evaluate", str(model), "--data", str(tmp_path / "cancer.csv"))
    assert r.returncode == 0, r.stderr
    assert "was trained on rows of a file named cancer.csv: this score is not measured on unseen rows alone" in r.stderr
    frame.to_csv(tmp_path / "other.csv", index=False)  # another file: no warning
    r = run("evaluate", str(model), "--data", str(tmp_path / "other.csv"))
    assert r.returncode == 0 and "unseen rows" not in r.stderr


def test_class_labels_must_name_every_class_of_the_output_layer_to_be_saved(tmp_path):
    net = xpbp.Network([4, 3, 3], output_activation="softmax", cost="log_likelihood", device="cpu", seed=0)
    net.classes = ("a", "b")
    with pytest.raises(ValueError, match=r"classes must name the 3 classes of the output layer, got \('a', 'b'\)"):
        net.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    net.classes = ("a", "b", "c")
    net.save(tmp_path / "m.npz")
    assert xpbp.load(tmp_path / "m.npz", device="cpu").classes == ("a", "b", "c")
