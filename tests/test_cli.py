"""The ``xpbp`` console script, run as a user would, in a subprocess."""

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import xpbp

from conftest import CUDA

SCRIPT = Path(sysconfig.get_path("scripts")) / "xpbp"


def run(*args, module=False):
    cmd = [sys.executable, "-m", "xpbp", *args] if module else [str(SCRIPT), *args]
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_train_with_defaults_reaches_90_percent(tmp_path):
    """The README's main job: Nielsen's settings, 30 epochs, held-out accuracy >= 90%."""
    model = tmp_path / "model.npz"
    r = run("train", "--seed", "3", "--device", "cpu", "--save", str(model))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("held-out accuracy ") and "after 30 epochs" in lines[0] and "on cpu" in lines[0]
    accuracy = float(lines[0].split()[2].rstrip("%")) / 100
    assert accuracy >= 0.90
    assert lines[1] == f"saved to {model}"
    assert "epoch 30/30: cost" in r.stderr and "accuracy" in r.stderr
    net = xpbp.load(model, device="cpu")
    X, y = xpbp.datasets.load("mnist-sample", "test")
    assert net.evaluate(X, y) == pytest.approx(accuracy, abs=1e-9)


def test_python_dash_m_and_options():
    r = run("train", "--epochs", "1", "--sizes", "784,20,10", "--output-activation", "softmax",
            "--cost", "log_likelihood", "--eta", "0.5", "--dtype", "float64", "--device", "cpu", module=True)
    assert r.returncode == 0, r.stderr
    assert "after 1 epochs" in r.stdout and "epoch 1/1" in r.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "--cost", "hinge"], 1, "xpbp: error: cost must be one of"),
        (["train", "--sizes", "100,10"], 1, r"X must have shape \(n_examples, 100\)"),
        (["train", "--sizes", "784,x"], 2, "expected comma-separated integers"),
        (["train", "--epochs", "0"], 1, "epochs must be a positive integer"),
        (["train", "--save", "/nonexistent/dir/m.npz", "--epochs", "1"], 1, "xpbp: error:"),
        (["fly"], 2, "invalid choice"),
    ],
)
def test_errors_are_one_line(args, code, message):
    r = run(*args, "--device", "cpu") if args[0] == "train" else run(*args)
    assert r.returncode == code
    assert "Traceback" not in r.stderr
    assert re.search(message, r.stderr.strip().splitlines()[-1])


@pytest.mark.skipif(CUDA, reason="checks the error where no CUDA device is usable")
def test_cuda_without_gpu_is_a_one_line_error():
    r = run("train", "--device", "cuda", "--epochs", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("xpbp: error: CUDA was asked for") and "device='cpu'" in last
