"""scikit-learn's MLP against xpbp's drop-in, side by side in one run:
``python -m benchmarks.sklearn_mlp [--fashion-epochs N] [--device cpu] [--out results/FILE.json]``.

The same task, estimator settings and random_state for both; each task's fit alternates
between the two libraries, so that both meet the same noise. It reports the test score
(accuracy, or R² for the regression) and the seconds of ``fit``, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl
from sklearn import neural_network as reference
from sklearn.datasets import load_breast_cancer, load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from xpbp import bench, datasets
from xpbp import sklearn as drop_in


def tasks(fashion_epochs: int) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """(name, kind, (X_train, X_test, y_train, y_test), settings beyond the defaults)."""
    out = []
    for name, loader in (("digits", load_digits), ("breast cancer", load_breast_cancer)):
        X, y = loader(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
        scaler = StandardScaler().fit(X_train)
        out.append((name, "classifier", (scaler.transform(X_train), scaler.transform(X_test), y_train, y_test), {}))
    X, y = make_regression(n_samples=5000, n_features=20, n_informative=10, noise=10.0, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y / y.std(), test_size=0.25, random_state=0)
    out.append(("synthetic regression (5000 x 20)", "regressor", (X_train, X_test, y_train, y_test), {}))
    if fashion_epochs:
        try:
            X_train, y_train = datasets.load("fashion-mnist", "train", download=False)
            X_test, y_test = datasets.load("fashion-mnist", "test", download=False)
        except (OSError, ValueError) as e:
            print(f"Fashion-MNIST skipped: {e}")
        else:
            data = (X_train.astype(np.float64), X_test.astype(np.float64), y_train, y_test)
            out.append((f"Fashion-MNIST ({fashion_epochs} epochs)", "classifier", data, {"max_iter": fashion_epochs}))
    return out


def timed(cls: Any, settings: dict[str, Any], data: Any) -> tuple[float, float]:
    X_train, X_test, y_train, y_test = data
    est = cls(random_state=0, **settings)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_train, y_train)
    return time.perf_counter() - start, float(est.score(X_test, y_test))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion-epochs", type=int, default=10, help="max_iter on Fashion-MNIST; 0 skips it (default: 10)")
    parser.add_argument("--device", default="cpu", help="xpbp's device (default: cpu)")
    parser.add_argument("--out", type=Path, help="write the rows and the machine as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for name, kind, data, settings in tasks(args.fashion_epochs):
        ours_cls = drop_in.MLPClassifier if kind == "classifier" else drop_in.MLPRegressor
        theirs_cls = reference.MLPClassifier if kind == "classifier" else reference.MLPRegressor
        theirs = timed(theirs_cls, settings, data)
        ours = timed(ours_cls, {**settings, "device": args.device}, data)
        row = {
            "task": name,
            "metric": "accuracy" if kind == "classifier" else "R2",
            "sklearn_s": theirs[0],
            "sklearn_score": theirs[1],
            "xpbp_s": ours[0],
            "xpbp_score": ours[1],
            "speedup": theirs[0] / ours[0],
        }
        rows.append(row)
        print(
            f"{name}: scikit-learn {theirs[1]:.4f} in {theirs[0]:.2f} s, xpbp ({args.device}) {ours[1]:.4f} "
            f"in {ours[0]:.2f} s: {row['speedup']:.2f}x"
        )
    if args.out:
        blas = threadpoolctl.threadpool_info()
        kernels = sorted({str(lib.get("architecture")) for lib in blas if lib.get("internal_api") == "openblas"})
        record = {"machine": bench.machine(), "openblas_kernel": kernels, "device": args.device, "rows": rows}
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
