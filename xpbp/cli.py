"""The ``xpbp`` command: ``xpbp train`` trains a network on the embedded MNIST sample.

Per-epoch lines go to stderr (through logging), the final result to stdout. Errors
end with a one-line message and exit status 1 (2 for a bad command line).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from . import datasets
from .network import Network

__all__ = ["main"]


def _sizes(text: str) -> list[int]:
    try:
        return [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 784,30,10, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xpbp", description="Backpropagation (BP1-BP4) on NumPy or CuPy.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train on the embedded MNIST sample and report held-out accuracy",
        description="Train on 8,000 digits of the embedded MNIST sample; report accuracy on the other 2,000. "
        "The defaults are the settings of Nielsen's network.py.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("--sizes", type=_sizes, default=[784, 30, 10], metavar="N,N,...", help="layer widths, input first")
    train.add_argument("--activation", default="sigmoid", help="hidden layers: sigmoid, tanh, relu or identity")
    train.add_argument("--output-activation", default=None, help="output layer (default: as the hidden layers); softmax allowed")
    train.add_argument("--cost", default="quadratic", help="quadratic, cross_entropy or log_likelihood")
    train.add_argument("--init", default="scaled", help="scaled (N(0, 1/n_in) weights) or large (N(0, 1))")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=10, help="mini-batch size m")
    train.add_argument("--eta", type=float, default=3.0, help="learning rate")
    train.add_argument("--lmbda", type=float, default=0.0, help="L2 regularization")
    train.add_argument("--momentum", type=float, default=0.0, help="momentum coefficient mu, in [0, 1)")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--dtype", default="float32", help="float32 or float64")
    train.add_argument("--seed", type=int, default=None, help="seed for initialisation and shuffling (default: random)")
    train.add_argument("--save", metavar="PATH", default=None, help="write the trained network to this .npz file")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: when stderr is a terminal)")
    return parser


def _train(args: argparse.Namespace) -> None:
    X, y = datasets.load("mnist-sample", "train")
    X_test, y_test = datasets.load("mnist-sample", "test")
    net = Network(
        args.sizes,
        activation=args.activation,
        output_activation=args.output_activation,
        cost=args.cost,
        init=args.init,
        dtype=args.dtype,
        device=args.device,
        seed=args.seed,
    )
    print(f"training {net} on {len(X)} digits, seed {net.seed}", file=sys.stderr)
    start = time.perf_counter()
    history = net.fit(
        X,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        eta=args.eta,
        lmbda=args.lmbda,
        momentum=args.momentum,
        validation_data=(X_test, y_test),
        progress=args.progress,
    )
    seconds = time.perf_counter() - start
    accuracy = history.val_accuracy[-1]
    print(
        f"held-out accuracy {accuracy:.2%} ({round(accuracy * len(X_test))}/{len(X_test)} digits) "
        f"after {args.epochs} epochs, {seconds:.1f} s on {net.device}"
    )
    if args.save:
        net.save(args.save)
        print(f"saved to {args.save}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        _train(args)
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        print(f"xpbp: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xpbp: interrupted", file=sys.stderr)
        return 130
    return 0
