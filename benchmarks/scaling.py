"""Data-parallel scaling on one machine: ``python -m benchmarks.scaling``.

For each cell, ``fit`` throughput (examples/s, the median of its epochs) with P ranks
under ``mpiexec -n P`` (the mpiexec beside the interpreter: ``pip install mpich``), each
rank with T BLAS threads, against one rank with the same total threads (P·T) and
against one rank with T threads: the efficiency is speed(P ranks × T threads) / speed(1
rank × P·T threads), the speed-up is against 1 rank × T threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from . import report, suite

CELLS = (((784, 100, 10), 128, 60000), ((784, 1024, 1024, 10), 1024, 8192))


def worker(args: argparse.Namespace) -> None:
    """One rank: train the cell for a few epochs; rank 0 prints the median examples/s."""
    from mpi4py import MPI

    import xpbp

    comm = MPI.COMM_WORLD
    cell = suite.Cell(tuple(int(s) for s in args.sizes.split(",")), args.batch, "float32", "cpu")
    X, y = suite._data(args.examples, cell)
    net = xpbp.Network(list(cell.sizes), device="cpu", seed=0)
    fit = dict(batch_size=cell.batch, eta=0.01, progress=False, threads=args.threads, comm=comm if comm.Get_size() > 1 else None)
    net.fit(X, y, epochs=1, **fit)  # warm up
    history = net.fit(X, y, epochs=args.epochs, **fit)
    if comm.Get_rank() == 0:
        print(json.dumps(statistics.median(args.examples / s for s in history.seconds)))


def measure(sizes: tuple[int, ...], batch: int, examples: int, ranks: int, threads: int, epochs: int) -> float:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, "-m", "benchmarks.scaling", "--worker", "--sizes",
           ",".join(map(str, sizes)), "--batch", str(batch), "--examples", str(examples), "--threads", str(threads),
           "--epochs", str(epochs)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    return float(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=2, help="the most ranks to try (default: 2)")
    parser.add_argument("--out", default=None, help="a directory to write scaling-<machine>.json and .md into")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    rows = []
    for sizes, batch, examples in CELLS:
        one = {t: measure(sizes, batch, examples, 1, t, args.epochs) for t in sorted({1, args.ranks})}
        for ranks in range(1, args.ranks + 1):
            rate = measure(sizes, batch, examples, ranks, 1, args.epochs) if ranks > 1 else one[1]
            rows.append({"net": list(sizes), "batch": batch, "ranks": ranks, "threads_per_rank": 1, "examples_per_s": rate,
                         "one_rank_same_threads": one[ranks], "efficiency": rate / one[ranks], "speedup": rate / one[1]})
    lines = ["| net | batch | ranks × threads | examples/s | 1 rank × same threads | efficiency | speed-up over 1 × 1 |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {'-'.join(map(str, r['net']))} | {r['batch']} | {r['ranks']} × 1 | {r['examples_per_s']:,.0f} | "
                     f"{r['one_rank_same_threads']:,.0f} | {r['efficiency']:.2f} | {r['speedup']:.2f} |")
    machine = report.machine()
    text = f"float32 `fit` on {machine['cpu']}, {machine['cores']} cores, MPICH (pip) through mpi4py\n\n" + "\n".join(lines)
    print(text)
    if args.out:
        base = Path(args.out) / f"scaling-{report.slug(machine)}"
        base.with_suffix(".json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")
        base.with_suffix(".md").write_text(text + "\n")
        print(f"wrote {base}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
