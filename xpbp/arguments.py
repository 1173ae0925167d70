"""The `xpbp` command's arguments: its subcommands, their options, help texts and
defaults (argparse). `xpbp.cli` runs the commands."""

from __future__ import annotations

import argparse
from typing import NoReturn

from . import __version__, costs, datasets, optimizers, scaling
from .activations import HIDDEN

__all__ = ["UsageError", "parser"]


class UsageError(Exception):
    """A malformed command line; `parser` is the (sub)command's parser, for its usage line."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors `main` reports (so that `--json` gets its object)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


def _sizes(text: str) -> list[int]:
    try:
        return [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 784,30,10, got {text!r}") from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no per-epoch lines or notes on stderr, only warnings and errors"
    )


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        choices=datasets.NAMES,
        default=None,
        help="mnist-sample is embedded (8,000 train / 2,000 test digits); the others are found or "
        "downloaded (default: mnist-sample, unless --data is given)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="a directory holding the data set's IDX files, looked in first (default: none)",
    )
    parser.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="fail instead of downloading missing files (default: download them)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto, a GPU when one is usable)")


def parser() -> argparse.ArgumentParser:
    """The `xpbp` command's parser: `train`, `evaluate`, `info`, `bench`."""
    top = _Parser(prog="xpbp", description="Backpropagation (BP1-BP4) on NumPy or CuPy.", allow_abbrev=False)
    top.add_argument("--version", action="version", version=f"xpbp {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        allow_abbrev=False,
        help="train a network and report test accuracy",
        description="Train on a data set's training split, validating on its test split after "
        "every epoch. The defaults are the settings of Nielsen's network.py.",
    )
    for options in (_data_options, _file_options, _network_options, _training_options, _output_options, _common):
        options(train)
    evaluate = commands.add_parser(
        "evaluate",
        allow_abbrev=False,
        help="a saved model's scores: accuracy, per-class accuracy and confusion matrix, or RMSE and R²",
    )
    _evaluate_options(evaluate)
    predict = commands.add_parser(
        "predict",
        allow_abbrev=False,
        help="a saved model's predictions for the rows of a file, as CSV",
        description="One output row per input row, in order: the predicted label (in the labels the model was "
        "trained on) and with --proba each class's probability, or a regression's predictions.",
    )
    _predict_options(predict)
    export = commands.add_parser(
        "export",
        allow_abbrev=False,
        help="write a saved model, with its scaling, as an ONNX graph",
        description="An ONNX model (opset 13) computing what the model's predict_proba (a classifier) or "
        "predict (a regression) computes, for an input named 'x' of shape (N, features) in float32; needs onnx.",
    )
    export.add_argument("model", help="a .npz file written by xpbp train --save or Network.save")
    export.add_argument("out", help="the .onnx file to write")
    _common(export)
    _common(commands.add_parser("info", allow_abbrev=False, help="versions, BLAS, and whether CUDA is usable"))
    bench = commands.add_parser(
        "bench",
        allow_abbrev=False,
        help="training throughput on this machine's CPU and GPUs",
        description="Whole fit epochs on each device, beside the device's GEMM ceiling (the "
        "training step's matrix products alone), interleaved; the median examples/s of the rounds.",
    )
    _bench_options(bench)
    return top


def _file_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--data",
        metavar="PATH",
        default=None,
        help="train on a file of your own: CSV with an optional header row, .npz with X and y, or Parquet; "
        "one example per row (default: none, a built-in --dataset)",
    )
    add("--target", metavar="COL", default=None, help="the target column of --data, by name or index (default: the last)")
    add("--test", metavar="PATH", default=None, help="a file of test rows, laid out as --data (default: --test-fraction)")
    add(
        "--test-fraction",
        type=float,
        default=None,
        metavar="F",
        help="hold out this share of --data's rows (stratified for classes, from the seed) to test on (default: 0.2)",
    )
    add(
        "--task",
        choices=("classification", "regression"),
        default=None,
        help="what --data's target is (default: classes when it holds labels, or whole numbers of at most 50 values)",
    )
    add(
        "--scale",
        choices=(*scaling.KINDS, "none"),
        default=None,
        help="scale the features, fitted on the training rows and saved with the model: standard (mean 0, "
        "standard deviation 1) or minmax ([0, 1]) (default: standard on --data, none on a --dataset)",
    )
    add(
        "--hidden",
        type=_sizes,
        default=None,
        metavar="N,N,...",
        help="the hidden layers' widths; the data sets the input and output widths (default: 100 on --data, 30 on a --dataset)",
    )


def _network_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--sizes",
        type=_sizes,
        default=None,
        metavar="N,N,...",
        help="layer widths, input first, on a --dataset (default: 784,30,10; on --data use --hidden)",
    )
    add("--activation", choices=HIDDEN, default=None, help="σ of the hidden layers (default: sigmoid; relu on --data)")
    add(
        "--output-activation",
        choices=(*HIDDEN, "softmax"),
        default=None,
        help="σ of the output layer (default: as the hidden layers; on --data softmax, or sigmoid for two classes, "
        "or identity for a regression)",
    )
    add(
        "--cost",
        choices=costs.NAMES,
        default=None,
        help="cross_entropy needs a sigmoid output, log_likelihood a softmax one; squared_error is scikit-learn's "
        "(the quadratic cost over the outputs' mean) (default: quadratic; on --data log_likelihood, cross_entropy "
        "or squared_error, to match the output)",
    )
    add(
        "--init", choices=("scaled", "large"), default="scaled", help="scaled: w ~ N(0, 1/n_in); large: N(0, 1) (default: scaled)"
    )
    add("--dtype", choices=("float32", "float64"), default="float32", help="floating-point type (default: float32)")
    add("--seed", type=int, default=None, help="seed for initialisation and shuffling (default: drawn at random and printed)")


def _training_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--epochs", type=int, default=None, help="passes over the training data (default: 30; 200 on --data)")
    add("--batch-size", type=int, default=None, help="mini-batch size m (default: 10; min(200, N) on --data)")
    add(
        "--eta",
        type=float,
        default=None,
        help="learning rate η (default: Nielsen's for the cost: 3.0 quadratic, 0.5 cross_entropy, 0.1 log_likelihood)",
    )
    add("--eta-decay", type=float, default=0.0, help="learning-rate schedule: η/(1 + decay·(epoch − 1)) (default: 0, constant)")
    add("--lmbda", type=float, default=0.0, help="L2 regularisation λ (default: 0)")
    add("--momentum", type=float, default=0.0, help="momentum coefficient μ, in [0, 1) (default: 0)")
    add(
        "--optimizer",
        choices=optimizers.NAMES,
        default=None,
        help="sgd: heavy-ball momentum μ; nesterov: Nesterov momentum (μ > 0); adam: Adam, with η 0.001 by default "
        "(default: sgd; adam on --data)",
    )
    add(
        "--regularization",
        choices=("l2", "l1"),
        default="l2",
        help="the term --lmbda weighs: L2 (weight decay) or L1 (default: l2)",
    )
    add(
        "--dropout",
        type=float,
        default=0.0,
        metavar="P",
        help="drop each hidden neuron with probability P in training (default: 0)",
    )
    add(
        "--validation-fraction",
        type=float,
        default=None,
        metavar="F",
        help="hold out this fraction of the training data (stratified) to validate on each epoch; the test split is then "
        "read once, at the end (default: validate on the test split each epoch)",
    )
    add(
        "--early-stopping",
        type=int,
        default=None,
        metavar="N",
        help="stop after N epochs without improvement of the validation score, keeping the best epoch's network; "
        "needs --validation-fraction (default: off)",
    )
    add(
        "--halve-eta",
        type=int,
        default=None,
        metavar="N",
        help="halve η after N epochs without improvement of the validation score, stopping at 1/128 of it (Nielsen, ch. 3); "
        "needs --validation-fraction (default: off)",
    )
    add(
        "--shift",
        type=int,
        default=0,
        metavar="N",
        help="expand the training data: move each image by up to N pixels each way, anew each epoch (default: 0)",
    )
    add(
        "--mirror",
        action="store_true",
        help="expand the training data: mirror each image left-right half the time (default: off)",
    )
    add("--tol", type=float, default=0.0, help="how much the validation score must improve by to count (default: 0)")
    add(
        "--monitor",
        choices=("val_accuracy", "val_cost"),
        default=None,
        help="the validation score --early-stopping and --halve-eta watch (default: val_accuracy)",
    )
    add(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads for training on the CPU (default: one for small "
        "networks and batches, where more do not pay, and one per rank under MPI, else all; or $XPBP_NUM_THREADS)",
    )
    add(
        "--distributed",
        choices=("mpi", "nccl"),
        default=None,
        help="train one network on all the processes mpiexec started: mpi on CPUs, nccl on GPUs, one GPU per "
        "process; --batch-size is then the global mini-batch (default: one process)",
    )


def _output_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--save", metavar="PATH", default=None, help="write the trained network to this .npz file (default: not saved)")
    add("--plot", metavar="PNG", default=None, help="draw the learning curves into this PNG; needs matplotlib (default: none)")
    add(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar (default: when stderr is a terminal)",
    )


def _evaluate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a .npz file written by xpbp train --save or Network.save")
    _data_options(parser)
    parser.add_argument(
        "--data",
        metavar="PATH",
        default=None,
        help="score on a file of your own, laid out as the model's training file (default: a built-in --dataset)",
    )
    parser.add_argument("--target", metavar="COL", default=None, help="the target column of --data (default: the last)")
    parser.add_argument("--split", choices=("train", "test"), default="test", help="which split to evaluate on (default: test)")
    parser.add_argument(
        "--plot", metavar="PNG", default=None, help="draw the confusion matrix into this PNG; needs matplotlib (default: none)"
    )
    _common(parser)


def _predict_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("model", help="a .npz file written by xpbp train --save or Network.save")
    add(
        "--data",
        metavar="PATH",
        required=True,
        help="the rows to predict: CSV, .npz or Parquet, with or without the target (required)",
    )
    add("--target", metavar="COL", default=None, help="the target column of --data, when it has one (default: the last)")
    add("--out", metavar="FILE.csv", required=True, help="the CSV file to write, one row per row of --data (required)")
    add("--proba", action="store_true", help="also each class's probability, a column per class")
    add("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    _common(parser)


def _bench_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--sizes",
        type=_sizes,
        nargs="+",
        default=None,
        metavar="N,N,...",
        help="networks (default: 784,30,10 784,100,10 784,1024,1024,10; with --quick the first two)",
    )
    add(
        "--batch-sizes",
        type=_sizes,
        default=None,
        metavar="M,M,...",
        help="mini-batch sizes (default: 10,128,1024; with --quick 10,128)",
    )
    add("--dtype", choices=("float32", "float64"), nargs="+", default=["float32"], help="(default: float32)")
    add("--devices", default=None, metavar="D,D,...", help="devices (default: the CPU and every CUDA device)")
    add("--repeats", type=int, default=None, help="rounds per cell (default: 3; with --quick 2)")
    add("--quick", action="store_true", help="a small grid, in well under a minute")
    add(
        "--native-kernel",
        action="store_true",
        help="where a variable forces the BLAS kernel (OPENBLAS_CORETYPE, ...), measure again in a child process "
        "without it, and show both (default: off; the variable is never changed for this process)",
    )
    add(
        "--plot",
        metavar="PNG",
        default=None,
        help="draw examples/s against batch size into this PNG; needs matplotlib (default: none)",
    )
    _common(parser)
