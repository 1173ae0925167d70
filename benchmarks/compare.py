"""xpbp's ``fit`` at an earlier git revision against the working tree, side by side in one
process: ``python -m benchmarks.compare REV``.

A change to the training loop is worth keeping when this says so. Running the two
versions in separate processes, one after the other, compares two moments of a shared
machine as much as two versions of the code; here both versions are imported at once
(the old one under another package name) and their epochs alternate, the order
rotating each round, so that both meet the same noise. It prints the speed ratio
(working tree / REV) of every round and their median.
"""

from __future__ import annotations

import argparse
import importlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType

import xpbp

from . import suite

ROOT = Path(__file__).resolve().parent.parent


def load_revision(rev: str, into: Path) -> ModuleType:
    """The ``xpbp`` package as it was at git revision ``rev``, imported as ``xpbp_<rev>``
    from a copy under ``into`` (xpbp imports itself relatively, so the new name holds)."""
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True)
    if commit.returncode != 0:
        raise SystemExit(f"benchmarks.compare: error: {rev!r} is not a git revision here: {commit.stderr.strip()}")
    name = f"xpbp_{commit.stdout.strip()}"
    archive = subprocess.run(["git", "archive", rev, "xpbp"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "xpbp").rename(into / name)
    sys.path.insert(0, str(into))
    return importlib.import_module(name)


def rounds(old: ModuleType, args: argparse.Namespace) -> list[float]:
    """Speed ratios (working tree / old), one per round of one epoch each."""
    sizes = [int(s) for s in args.sizes.split(",")]
    X, y = suite._data(args.examples, suite.Cell(tuple(sizes), args.batch, args.dtype, args.device))
    fit = dict(batch_size=args.batch, eta=0.01, momentum=args.momentum, progress=False)
    nets = {"old": old.Network(sizes, dtype=args.dtype, device=args.device, seed=1),
            "new": xpbp.Network(sizes, dtype=args.dtype, device=args.device, seed=1)}
    for net in nets.values():  # warm up: allocators, BLAS threads, work buffers
        net.fit(X, y, epochs=1, **fit)
    ratios = []
    for r in range(args.rounds):
        seconds = {}
        for key in (("old", "new") if r % 2 else ("new", "old")):
            start = time.perf_counter()
            nets[key].fit(X, y, epochs=1, **fit)  # ends with the epoch's host synchronisation
            seconds[key] = time.perf_counter() - start
        ratios.append(seconds["old"] / seconds["new"])
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the git revision to compare with, e.g. HEAD or HEAD~1")
    parser.add_argument("--sizes", default="784,30,10")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--examples", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        old = load_revision(args.rev, Path(tmp))
        ratios = rounds(old, args)
    print(f"fit {args.sizes} batch {args.batch} {args.dtype} momentum {args.momentum} on {args.device}, "
          f"{args.examples} examples: working tree / {args.rev} speed, per round: {' '.join(f'{r:.3f}' for r in ratios)}")
    print(f"median {statistics.median(ratios):.3f} (> 1: the working tree is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
