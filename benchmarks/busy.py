"""``fit`` on a busy machine: ``python -m benchmarks.busy``.

Measures a cell's ``fit`` throughput alone, then while two other processes train the
same cell on the same cores, and reports busy/solo as a ratio, for two thread
policies: xpbp's own choice (``threads=None``, one BLAS thread for steps too small for
more to pay) and every core to BLAS (``threads=os.cpu_count()``, NumPy's default, which
xpbp used before it chose). The other trainings use the same policy as the measured
one, as copies of one job would.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import xpbp
import xpbp.threads

from . import report, suite

# A training process that runs until it is killed.
_OTHER = """
import sys, numpy as np, xpbp
sizes, m, n, threads = [int(s) for s in sys.argv[1].split(",")], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
X = np.random.default_rng(1).random((n, sizes[0]), dtype=np.float32); y = np.random.default_rng(2).integers(sizes[-1], size=n)
net = xpbp.Network(sizes, device="cpu", seed=1)
print("ready", flush=True)
while True:
    net.fit(X, y, epochs=1, batch_size=m, eta=0.01, progress=False, threads=None if threads == "auto" else int(threads))
"""


def rates(cell: suite.Cell, n: int, threads: int | None, epochs: int) -> list[float]:
    X, y = suite._data(n, cell)
    net = xpbp.Network(list(cell.sizes), dtype=cell.dtype, device="cpu", seed=0)
    net.fit(X, y, epochs=1, batch_size=cell.batch, eta=0.01, progress=False, threads=threads)  # warm up
    out = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.fit(X, y, epochs=1, batch_size=cell.batch, eta=0.01, progress=False, threads=threads)
        out.append(n / (time.perf_counter() - start))
    return out


def busy(cell: suite.Cell, n: int, threads: int | None, epochs: int, others: int) -> list[float]:
    """Throughput while ``others`` processes train the same cell with the same policy."""
    argv = [",".join(map(str, cell.sizes)), str(cell.batch), str(n), "auto" if threads is None else str(threads)]
    procs = [subprocess.Popen([sys.executable, "-c", _OTHER, *argv], stdout=subprocess.PIPE, text=True) for _ in range(others)]
    try:
        for p in procs:
            p.stdout.readline()  # "ready": it is about to train
        time.sleep(1.0)
        return rates(cell, n, threads, epochs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
            p.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.busy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="784,100,10")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--others", type=int, default=2)
    parser.add_argument("--out", default=None, help="a directory to write busy-<machine>.json into")
    args = parser.parse_args(argv)
    cell = suite.Cell(tuple(int(s) for s in args.sizes.split(",")), args.batch, "float32", "cpu")
    policies = {"xpbp's choice": None, "all cores": os.cpu_count()}
    rows = []
    for name, threads in policies.items():
        solo = statistics.median(rates(cell, args.examples, threads, args.epochs))
        loaded = statistics.median(busy(cell, args.examples, threads, args.epochs, args.others))
        chosen = xpbp.threads.threads_for(list(cell.sizes), cell.batch) if threads is None else threads
        rows.append({"policy": name, "blas_threads": chosen or os.cpu_count(), "solo": solo, "busy": loaded,
                     "busy_over_solo": loaded / solo})
    print(f"fit {cell.key}, {args.others} other trainings of the same cell running, {os.cpu_count()} cores:")
    print("| threads | BLAS threads | solo ex/s | busy ex/s | busy / solo |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['policy']} | {r['blas_threads']} | {r['solo']:,.0f} | {r['busy']:,.0f} | {r['busy_over_solo']:.2f} |")
    if args.out:
        machine = report.machine()
        path = Path(args.out) / f"busy-{report.slug(machine)}.json"
        path.write_text(json.dumps({"machine": machine, "cell": cell.key, "others": args.others, "rows": rows}, indent=1) + "\n")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
