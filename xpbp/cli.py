"""The ``xpbp`` command: ``train``, ``evaluate`` and ``info``.

Human-readable results go to stdout, per-epoch lines and progress bars to stderr.
With ``--json`` stdout carries exactly one JSON object. Errors end with one line
``xpbp: error: ...`` and exit status 1 (2 for a bad command line).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from typing import Any

import numpy as np

from . import __version__, backend, datasets
from .activations import HIDDEN
from .network import Network, load

__all__ = ["main"]


def _sizes(text: str) -> list[int]:
    try:
        return [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 784,30,10, got {text!r}") from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=datasets.NAMES, default="mnist-sample",
                        help="mnist-sample is embedded (8,000 train / 2,000 test digits); the others are found or downloaded")
    parser.add_argument("--data-dir", default=None, help="directory holding the data set's IDX files (looked in first)")
    parser.add_argument("--no-download", dest="download", action="store_false", help="fail instead of downloading missing files")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xpbp", description="Backpropagation (BP1-BP4) on NumPy or CuPy.")
    parser.add_argument("--version", action="version", version=f"xpbp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    train = commands.add_parser("train", formatter_class=fmt, help="train a network and report test accuracy",
                                description="Train on a data set's training split, validating on its test split after "
                                "every epoch. The defaults are the settings of Nielsen's network.py.")
    _data_options(train)
    train.add_argument("--sizes", type=_sizes, default=[784, 30, 10], metavar="N,N,...", help="layer widths, input first")
    train.add_argument("--activation", choices=HIDDEN, default="sigmoid", help="hidden layers")
    train.add_argument("--output-activation", choices=(*HIDDEN, "softmax"), default=None,
                       help="output layer (default: as the hidden layers)")
    train.add_argument("--cost", choices=("quadratic", "cross_entropy", "log_likelihood"), default="quadratic")
    train.add_argument("--init", choices=("scaled", "large"), default="scaled", help="scaled: w ~ N(0, 1/n_in); large: N(0, 1)")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=10, help="mini-batch size m")
    train.add_argument("--eta", type=float, default=3.0, help="learning rate")
    train.add_argument("--eta-decay", type=float, default=0.0, help="learning-rate schedule: eta/(1 + decay*(epoch-1))")
    train.add_argument("--lmbda", type=float, default=0.0, help="L2 regularization")
    train.add_argument("--momentum", type=float, default=0.0, help="momentum coefficient mu, in [0, 1)")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--seed", type=int, default=None, help="seed for initialisation and shuffling (default: random)")
    train.add_argument("--save", metavar="PATH", default=None, help="write the trained network to this .npz file")
    train.add_argument("--plot", metavar="PNG", default=None, help="draw the learning curves into this PNG (needs xpbp[plot])")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (default: when stderr is a terminal)")
    _common(train)

    evaluate = commands.add_parser("evaluate", formatter_class=fmt, help="accuracy, per-class accuracy and confusion matrix of a saved model")
    evaluate.add_argument("model", help="a .npz file written by xpbp train --save or Network.save")
    _data_options(evaluate)
    evaluate.add_argument("--split", choices=("train", "test"), default="test")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    evaluate.add_argument("--plot", metavar="PNG", default=None, help="draw the confusion matrix into this PNG (needs xpbp[plot])")
    _common(evaluate)

    info = commands.add_parser("info", help="versions, BLAS, and whether CUDA is usable")
    _common(info)
    return parser


def _plotting():
    """The plots module, or a clear error saying how to install matplotlib."""
    try:
        from . import plots
    except ImportError as e:
        raise RuntimeError(f"--plot needs matplotlib ({e}); install it with: pip install 'xpbp[plot]'") from None
    return plots


def _train(args: argparse.Namespace) -> dict[str, Any]:
    plots = _plotting() if args.plot else None
    X, y = datasets.load(args.dataset, "train", data_dir=args.data_dir, download=args.download)
    X_test, y_test = datasets.load(args.dataset, "test", data_dir=args.data_dir, download=args.download)
    net = Network(args.sizes, activation=args.activation, output_activation=args.output_activation, cost=args.cost,
                  init=args.init, dtype=args.dtype, device=args.device, seed=args.seed)
    logging.getLogger(__name__).info("training %s on %d %s examples (seed %d)", net, len(X), args.dataset, net.seed)
    start = time.perf_counter()
    history = net.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, eta=args.eta, eta_decay=args.eta_decay,
                      lmbda=args.lmbda, momentum=args.momentum, validation_data=(X_test, y_test), progress=args.progress)
    seconds = time.perf_counter() - start
    if args.save:
        net.save(args.save)
    if plots:
        plots.learning_curves(history, args.plot, title=f"{args.dataset}: {net.sizes}, {args.activation}/{net.output_activation}, {args.cost}")
    accuracy = history.val_accuracy[-1]
    result = {
        "command": "train",
        "dataset": args.dataset,
        "network": {"sizes": net.sizes, "activation": net.activation, "output_activation": net.output_activation,
                    "cost": net.cost_name, "init": net.init, "dtype": str(net.dtype)},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "eta": args.eta, "eta_decay": args.eta_decay, "lmbda": args.lmbda,
                     "momentum": args.momentum, "examples": len(X)},
        "device": net.device,
        "seed": net.seed,
        "history": {"train_cost": history.train_cost, "test_cost": history.val_cost,
                    "test_accuracy": history.val_accuracy, "seconds": history.seconds},
        "test_accuracy": accuracy,
        "test_examples": len(X_test),
        "seconds": seconds,
        "examples_per_second": args.epochs * len(X) / sum(history.seconds),
        "saved": args.save,
        "plot": args.plot,
    }
    if not args.json:
        print(f"test accuracy {accuracy:.2%} ({round(accuracy * len(X_test))}/{len(X_test)}) after {args.epochs} epochs "
              f"on {net.device}: {seconds:.1f} s, {result['examples_per_second']:,.0f} examples/s (seed {net.seed})")
        for what, path in (("model saved to", args.save), ("learning curves drawn in", args.plot)):
            if path:
                print(f"{what} {path}")
    return result


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    plots = _plotting() if args.plot else None
    net = load(args.model, device=args.device)
    X, y = datasets.load(args.dataset, args.split, data_dir=args.data_dir, download=args.download)
    predicted = net.predict(X)
    k = net.sizes[-1]
    if y.max() >= k:
        raise ValueError(f"{args.dataset} has labels up to {y.max()} but the model has only {k} output neurons")
    confusion = np.bincount(y * k + predicted, minlength=k * k).reshape(k, k)  # rows: true class, columns: predicted
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    accuracy = float(confusion.diagonal().sum() / len(y))
    if plots:
        plots.confusion_matrix(confusion, args.plot, title=f"{args.model} on {args.dataset} {args.split}: {accuracy:.2%}")
    if not args.json:
        print(f"accuracy {accuracy:.2%} ({confusion.diagonal().sum()}/{len(y)}) on {args.dataset} {args.split}, {net.device}")
        print("per-class accuracy: " + "  ".join(f"{c}: {a:.1%}" for c, a in enumerate(per_class)))
        print("confusion matrix (rows: true class, columns: predicted):")
        width = max(len(str(confusion.max())), 2)
        print("     " + " ".join(f"{c:>{width}}" for c in range(k)))
        for c, row in enumerate(confusion):
            print(f"{c:>4} " + " ".join(f"{n:>{width}}" for n in row))
        if args.plot:
            print(f"confusion matrix drawn in {args.plot}")
    return {"command": "evaluate", "model": args.model, "dataset": args.dataset, "split": args.split, "device": net.device,
            "accuracy": accuracy, "per_class_accuracy": per_class.tolist(), "confusion_matrix": confusion.tolist(),
            "plot": args.plot}


def _info(args: argparse.Namespace) -> dict[str, Any]:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    result = {
        "command": "info",
        "xpbp": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": {key: blas.get(key) for key in ("name", "version")},
        "cuda": backend.cuda_info(),
    }
    if not args.json:
        cuda = result["cuda"]
        print(f"xpbp {result['xpbp']}, Python {result['python']}, NumPy {result['numpy']} "
              f"(BLAS: {blas.get('name', 'unknown')} {blas.get('version', '')})".rstrip())
        print(f"CuPy {cuda.get('cupy', 'not installed')}" + (f", CUDA runtime {cuda['cuda_runtime']}" if "cuda_runtime" in cuda else ""))
        for d in cuda.get("devices", []):
            print(f"{d['device']}: {d['name']}, {d['memory_gib']} GiB")
        print("CUDA usable: " + ("yes" if cuda["available"] else f"no ({cuda['reason']})"))
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        result = {"train": _train, "evaluate": _evaluate, "info": _info}[args.command](args)
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"xpbp: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xpbp: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result))
    return 0
