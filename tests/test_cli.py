"""The ``xpbp`` console script, run as a user would, in a subprocess."""

import json
import os
import re
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from conftest import CUDA
from test_datasets import FASHION

import xpbp

SCRIPT = Path(sysconfig.get_path("scripts")) / "xpbp"


def run(*args, module=False, env=None, timeout=900):
    """The command, as a user runs it; the timeout allows a machine many times slower than an idle CI one."""
    cmd = [sys.executable, "-m", "xpbp", *args] if module else [str(SCRIPT), *args]
    env = {**os.environ, "PYTHONWARNINGS": "error", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def png_size(path):
    """(width, height) of a PNG, after checking its signature and header chunk."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG file"
    assert data[-8:-4] == b"IEND", "PNG file does not end with its IEND chunk"
    return struct.unpack(">II", data[16:24])


def one_line_error(r, code, pattern):
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert re.search(pattern, last), last
    return last


def test_train_with_defaults_reaches_90_percent(tmp_path):
    """The README's main job: Nielsen's settings on the embedded sample, 30 epochs."""
    model, plot = tmp_path / "model.npz", tmp_path / "curves.png"
    r = run("train", "--seed", "3", "--device", "cpu", "--save", str(model), "--plot", str(plot))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    m = re.match(r"test accuracy (\d+\.\d+)% \((\d+)/2000\) after 30 epochs on cpu: [\d.]+ s, [\d,]+ examples/s \(seed 3\)$", lines[0])
    assert m, lines[0]
    accuracy = float(m.group(1)) / 100
    assert accuracy >= 0.90
    assert lines[1:] == [f"model saved to {model}", f"learning curves drawn in {plot}"]
    epochs = re.findall(r"^epoch (\d+)/30: cost [\d.]+, validation cost [\d.]+, accuracy [\d.]+% \([\d.]+ s, \d+ examples/s\)$", r.stderr, re.M)
    assert epochs == [str(e) for e in range(1, 31)]
    net = xpbp.load(model, device="cpu")
    X, y = xpbp.datasets.load("mnist-sample", "test")
    assert net.evaluate(X, y) == pytest.approx(accuracy, abs=5e-5)
    width, height = png_size(plot)
    assert (width, height) == (1000, 400) and plot.stat().st_size > 20_000


def test_train_json_is_one_object_and_nothing_else(tmp_path):
    r = run("train", "--epochs", "2", "--seed", "1", "--device", "cpu", "--json", "--sizes", "784,20,10",
            "--output-activation", "softmax", "--cost", "log_likelihood", "--eta", "0.5", "--lmbda", "1", "--momentum", "0.5")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)  # the whole of stdout
    assert r.stdout.count("\n") == 1
    assert result["command"] == "train" and result["device"] == "cpu" and result["seed"] == 1
    assert result["network"] == {"sizes": [784, 20, 10], "activation": "sigmoid", "output_activation": "softmax",
                                 "cost": "log_likelihood", "init": "scaled", "dtype": "float32", "task": "classification"}
    assert result["training"]["momentum"] == 0.5 and result["training"]["examples"] == 8000
    assert list(result["history"]) == ["train_cost", "val_cost", "val_accuracy", "val_rmse", "val_r2", "seconds",
                                       "best_epoch", "stopped_early"]  # History's own names
    assert result["metrics"] == ["train_cost", "val_cost", "val_accuracy", "seconds"]  # the lists that hold entries
    assert result["validated_on"] == "the test split"
    assert len(result["history"]["val_accuracy"]) == 2 and result["test_accuracy"] == result["history"]["val_accuracy"][-1]
    assert 0.8 < result["test_accuracy"] <= 1 and result["seconds"] > 0 and result["examples_per_second"] > 0


def test_train_with_the_training_parts_reads_the_test_split_once(tmp_path):
    """Adam, dropout, L1, expanded images, a validation split carved from the training data
    and early stopping: the epochs are validated on the split, and the test split is scored
    once, on the network early stopping kept."""
    model = tmp_path / "m.npz"
    r = run("train", "--epochs", "30", "--seed", "2", "--device", "cpu", "--json", "--sizes", "784,40,10", "--activation", "relu",
            "--output-activation", "softmax", "--cost", "log_likelihood", "--optimizer", "adam", "--batch-size", "32",
            "--dropout", "0.2", "--lmbda", "0.1", "--regularization", "l1", "--shift", "1", "--validation-fraction", "0.1",
            "--early-stopping", "2", "--halve-eta", "1", "--save", str(model))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    history = result["history"]
    assert result["validated_on"] == "a split of the training data" and result["training"]["examples"] == 8000
    assert result["training"]["optimizer"] == "adam" and result["training"]["eta"] == 0.001
    assert history["stopped_early"] and len(history["val_accuracy"]) < 30
    net = xpbp.load(model, device="cpu")
    X, y = xpbp.datasets.load("mnist-sample", "test")
    assert result["test_accuracy"] == pytest.approx(net.evaluate(X, y)) and result["test_accuracy"] > 0.85
    assert "η halved to 0.0005" in r.stderr and "stopping early after epoch" in r.stderr
    text = run("train", "--epochs", "2", "--seed", "2", "--device", "cpu", "--validation-fraction", "0.1")
    assert text.returncode == 0, text.stderr
    assert re.match(r"validation accuracy [\d.]+% in epoch 2, on 0.1 of the training data\ntest accuracy [\d.]+% \(\d+/2000\) after 2 epochs", text.stdout)


@pytest.mark.parametrize("args, message", [
    (["--early-stopping", "3"], r"--early-stopping watches a validation score: add --validation-fraction F \(watching the test split"),
    (["--halve-eta", "3"], "--halve-eta watches a validation score"),
    (["--optimizer", "nesterov"], r"optimizer='nesterov' needs a momentum > 0"),
    (["--dropout", "1"], r"dropout must be \[0.0, 1.0\)"),
    (["--validation-fraction", "1.5"], r"validation_fraction must be \[0.0, 1.0\)"),
    (["--shift", "28"], r"shift must be less than the image's side \(28 pixels\)"),
    (["--validation-fraction", "0.5", "--batch-size", "40000"], r"batch_size must be at most the number of examples \(30000 after the 30000 held out"),
])
def test_training_part_options_are_checked_before_any_work(args, message, tmp_path):
    r = run("train", "--dataset", "mnist", "--no-download", "--device", "cpu", *args, env={"XDG_CACHE_HOME": str(tmp_path)})
    one_line_error(r, 1, f"^xpbp: error: .*{message}")
    no_training(r)


def test_evaluate_reports_per_class_accuracy_and_confusion_matrix(tmp_path):
    model, plot = tmp_path / "m.npz", tmp_path / "confusion.png"
    assert run("train", "--epochs", "3", "--seed", "2", "--device", "cpu", "--save", str(model)).returncode == 0
    r = run("evaluate", str(model), "--device", "cpu", "--plot", str(plot))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.match(r"accuracy \d+\.\d+% \(\d+/2000\) on mnist-sample test, cpu$", lines[0])
    assert lines[1].startswith("per-class accuracy: 0: ") and " 9: " in lines[1]
    assert lines[2] == "confusion matrix (rows: true class, columns: predicted):"
    rows = [list(map(int, line.split()))[1:] for line in lines[4:14]]
    assert sum(map(sum, rows)) == 2000
    j = json.loads(run("evaluate", str(model), "--device", "cpu", "--json").stdout)
    assert j["confusion_matrix"] == rows
    assert j["accuracy"] == pytest.approx(sum(rows[i][i] for i in range(10)) / 2000)
    assert j["per_class_accuracy"][4] == pytest.approx(rows[4][4] / sum(rows[4]))
    width, height = png_size(plot)
    assert (width, height) == (700, 600) and plot.stat().st_size > 20_000


def test_info():
    r = run("info")
    assert r.returncode == 0, r.stderr
    assert re.match(rf"xpbp {re.escape(xpbp.__version__)}, Python [\d.]+, NumPy [\d.]+\nBLAS: .* kernel \w+\); CPU: ", r.stdout)
    assert "CUDA usable: " + ("yes" if CUDA else "no (") in r.stdout
    j = json.loads(run("info", "--json").stdout)
    assert j["cuda"]["available"] is CUDA and j["numpy"] and "name" in j["blas"]


def test_python_dash_m_is_the_same_command():
    r = run("train", "--epochs", "1", "--sizes", "784,20,10", "--dtype", "float64", "--device", "cpu", "--json", module=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["network"]["dtype"] == "float64"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "--cost", "hinge"], 2, "argument --cost: invalid choice: 'hinge'"),
        (["train", "--cost", "cross_entropy", "--output-activation", "softmax"], 1, r"^xpbp: error: cost='cross_entropy' requires"),
        (["train", "--sizes", "100,10"], 1, r"^xpbp: error: mnist-sample has 784 pixels .*--sizes must start with 784"),
        (["train", "--sizes", "784,x"], 2, "expected comma-separated integers"),
        (["train", "--epochs", "0"], 1, "^xpbp: error: epochs must be a positive integer"),
        (["train", "--device", "tpu"], 1, "^xpbp: error: unknown device 'tpu'"),
        (["train", "--save", "/nonexistent/dir/m.npz", "--epochs", "1"], 1, "^xpbp: error: cannot save to /nonexistent/dir/m.npz: no such directory"),
        (["evaluate", "/nonexistent/m.npz"], 1, "^xpbp: error: .*No such file or directory"),
        (["fly"], 2, "invalid choice: 'fly'"),
    ],
)
def test_errors_are_one_line(args, code, message):
    one_line_error(run(*args), code, message)


def test_evaluate_rejects_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("hello")
    one_line_error(run("evaluate", str(bad), "--device", "cpu"), 1, "^xpbp: error: .*not a valid xpbp model file")


def test_missing_data_set_says_how_to_get_it(tmp_path):
    last = one_line_error(run("train", "--dataset", "mnist", "--no-download", env={"XDG_CACHE_HOME": str(tmp_path)}),
                          1, "^xpbp: error: mnist: train-images-idx3-ubyte not found and download=False")
    assert "put train-images-idx3-ubyte.gz" in last and str(tmp_path) in last


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path):
    shim = tmp_path / "shim" / "matplotlib"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'matplotlib'\")\n")
    r = run("train", "--epochs", "1", "--plot", str(tmp_path / "c.png"),
            env={"PYTHONPATH": os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])})
    one_line_error(r, 1, r"--plot needs matplotlib .*pip install matplotlib \(in an xpbp checkout: pip install -e '\.\[plot\]'\)")
    assert not (tmp_path / "c.png").exists()


@pytest.mark.skipif(CUDA, reason="checks the error where no CUDA device is usable")
def test_cuda_without_gpu_is_a_one_line_error():
    last = one_line_error(run("train", "--device", "cuda", "--epochs", "1"), 1, "^xpbp: error: CUDA was asked for")
    assert "device='cpu'" in last


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs the Debian package dataset-fashion-mnist (.ci/run installs it)")
def test_train_on_fashion_mnist_from_the_debian_package(tmp_path):
    r = run("train", "--dataset", "fashion-mnist", "--no-download", "--epochs", "1", "--sizes", "784,30,10",
            "--output-activation", "softmax", "--cost", "log_likelihood", "--eta", "0.1", "--seed", "0", "--json",
            env={"XDG_CACHE_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["training"]["examples"] == 60000 and result["test_examples"] == 10000
    assert result["test_accuracy"] > 0.75  # one epoch; 30 reach about 88%


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="needs the Debian package dataset-fashion-mnist (.ci/run installs it)")
def test_readme_fashion_mnist_recipe_reaches_88_percent(tmp_path):
    """The README's Fashion-MNIST command: 30 epochs over the full 60k/10k split, on the CPU."""
    r = run("train", "--dataset", "fashion-mnist", "--no-download", "--sizes", "784,100,10", "--output-activation", "softmax",
            "--cost", "log_likelihood", "--batch-size", "50", "--eta", "0.1", "--momentum", "0.9", "--eta-decay", "0.2",
            "--epochs", "30", "--seed", "1", "--device", "cpu", "--json", env={"XDG_CACHE_HOME": str(tmp_path)}, timeout=3600)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["test_accuracy"] >= 0.88


# ---------------------------------------------------------------------- failures a user meets


def no_training(r):
    """Nothing was trained or loaded before the error: no epoch line, no progress."""
    assert "epoch " not in r.stderr, r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--save", "/nonexistent/dir/m.npz"], "cannot save to /nonexistent/dir/m.npz: no such directory"),
        (["--plot", "/nonexistent/dir/c.png"], "cannot save to /nonexistent/dir/c.png: no such directory"),
        (["--save", ""], "cannot save to an empty path"),
        (["--save", "/dev/null"], "/dev/null: it is a device file, not a regular file"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--batch-size", "20000"], r"batch_size must be at most the number of examples \(8000\)"),
        (["--eta", "inf"], "eta must be a finite number"),
        (["--lmbda", "nan"], "lmbda must be a finite number"),
        (["--eta-decay", "-1"], "eta_decay must be >= 0"),
        (["--threads", "0"], "threads must be a positive integer"),
        (["--data-dir", "/nonexistent/dir"], "data_dir /nonexistent/dir does not exist"),
        (["--plot", "curves.xyz"], r"--plot draws a PNG: give a file name ending in .png, got 'curves.xyz'"),
        (["--seed", str(2**63)], r"seed must be an integer in \[0, 2\*\*63\)"),
    ],
)
def test_arguments_are_checked_before_any_work(args, message, tmp_path):
    """Checked before the data set is loaded: with MNIST missing and downloads off, the
    error is still about the argument (--data-dir excepted: that is where data is looked for)."""
    r = run("train", "--dataset", "mnist", "--no-download", "--device", "cpu", *args, env={"XDG_CACHE_HOME": str(tmp_path)})
    if args[0] == "--batch-size":
        r = run("train", "--device", "cpu", *args)
    one_line_error(r, 1, f"^xpbp: error: .*{message}")
    no_training(r)


def test_divergence_and_memory_errors_are_one_line(tmp_path):
    r = run("train", "--eta", "1e300", "--epochs", "2", "--device", "cpu", "--save", str(tmp_path / "m.npz"))
    last = one_line_error(r, 1, r"^xpbp: error: training diverged in epoch 1, mini-batch \d+ of 800")
    assert "smaller learning rate" in last and not (tmp_path / "m.npz").exists()
    r = run("train", "--sizes", "784,100000000,10", "--device", "cpu")
    one_line_error(r, 1, "^xpbp: error: out of memory: .*Unable to allocate")
    no_training(r)


def test_a_data_dir_that_does_not_exist_is_refused_for_the_sample_too():
    one_line_error(run("train", "--data-dir", "/nonexistent/dir", "--epochs", "1"), 1, "data_dir /nonexistent/dir does not exist")


def test_json_failures_are_one_json_object():
    r = run("train", "--epochs", "0", "--json")
    assert r.returncode == 1 and json.loads(r.stdout) == {"error": "epochs must be a positive integer, got 0"}
    r = run("train", "--cost", "hinge", "--json")
    assert r.returncode == 2 and "invalid choice: 'hinge'" in json.loads(r.stdout)["error"]
    assert r.stdout.count("\n") == 1
    r = run("train", "--json=yes")
    assert r.returncode == 2 and "ignored explicit argument" in json.loads(r.stdout)["error"]
    r = run("train", "--jso")  # no abbreviations: a misspelt option is an error, not --json
    assert r.returncode == 2 and "unrecognized arguments: --jso" in r.stderr


def test_quiet_prints_the_result_only(tmp_path):
    r = run("train", "--epochs", "1", "--device", "cpu", "--quiet")
    assert r.returncode == 0 and r.stderr == "" and r.stdout.startswith("test accuracy ")


def test_evaluating_on_what_the_model_was_trained_on_is_flagged(tmp_path):
    model = tmp_path / "m.npz"
    assert run("train", "--epochs", "1", "--seed", "1", "--device", "cpu", "--save", str(model)).returncode == 0
    r = run("evaluate", str(model), "--split", "train", "--device", "cpu", "--json")
    assert r.returncode == 0, r.stderr
    assert "was trained on mnist-sample train, which holds 8000 of the 8000 examples of mnist-sample train" in r.stderr
    assert json.loads(r.stdout)["seen_in_training"] == 8000
    r = run("evaluate", str(model), "--device", "cpu")
    assert r.returncode == 0 and "warning" not in r.stderr


def test_help_explains_every_option_and_shows_each_default_once():
    for command in ("train", "evaluate", "predict", "export", "bench"):
        r = run(command, "--help")
        assert r.returncode == 0
        options = re.split(r"\n  (?=-)", r.stdout.split("options:")[1])[1:]
        for text in options:
            flat = " ".join(text.split())
            assert flat.count("(default:") <= 1, flat
            name = flat.split()[0]
            if name not in ("-h,", "--json", "-q,", "--quick", "--proba") and "(required)" not in flat:
                assert "(default:" in flat or "default" in flat, flat


def test_the_device_choice_is_a_note_not_an_error():
    r = run("train", "--epochs", "1")
    assert r.returncode == 0 and "xpbp: device" not in r.stderr and "xpbp: error" not in r.stderr
    assert "device 'auto' chose" in r.stderr
    assert "device 'auto'" not in run("train", "--epochs", "1", "--quiet").stderr


def test_the_sklearn_wrapper_without_scikit_learn_says_how_to_get_it(tmp_path):
    shim = tmp_path / "shim" / "sklearn"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'sklearn'\")\n")
    r = subprocess.run([sys.executable, "-c", "import xpbp.sklearn"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])})
    assert r.returncode == 1 and "xpbp.sklearn needs scikit-learn" in r.stderr and "pip install scikit-learn (in an xpbp checkout: pip install -e '.[sklearn]')" in r.stderr


def test_the_confusion_matrix_has_a_row_per_true_class(tmp_path):
    """Each row sums to the number of test examples of that class."""
    model = tmp_path / "m.npz"
    xpbp.Network([784, 10], device="cpu", seed=0).save(model)
    r = run("evaluate", str(model), "--device", "cpu", "--json")
    _, y = xpbp.datasets.load("mnist-sample", "test")
    assert [sum(row) for row in json.loads(r.stdout)["confusion_matrix"]] == np.bincount(y, minlength=10).tolist()


def test_more_output_neurons_than_classes_train():
    r = run("train", "--sizes", "784,12", "--epochs", "1", "--device", "cpu", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["network"]["sizes"] == [784, 12]
