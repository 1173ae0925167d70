"""Peak memory of ``fit`` above the data's own size, as N grows:
``python -m benchmarks.memory [--rows 60000,600000,2000000] [--out DIR]``.

Each N runs in a fresh process: it makes X (N × 784 float32, written in place a block at
a time, so that making it needs no second copy) and y, then trains ``784-100-10`` for one
epoch at m=128. Two measures of what ``fit`` holds beyond X and y: the peak of NumPy's
allocations during ``fit`` (tracemalloc, which sees every array NumPy makes), and the
growth of the process's peak resident size (``ru_maxrss``, which also sees the BLAS's
buffers and the interpreter). On a GPU the same would be read from CuPy's pool; no GPU
has been lent to this project.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np

from . import report

ROWS = (60_000, 600_000, 2_000_000)
FEATURES, SIZES, BATCH = 784, [784, 100, 10], 128
_MIB = 2**20


def measure(n: int) -> dict:
    """One N, in this process: the data's bytes and what fit held beyond them."""
    import xpbp

    rng = np.random.default_rng(0)
    X = np.empty((n, FEATURES), dtype=np.float32)
    for k in range(0, n, 65536):
        rng.random(dtype=np.float32, out=X[k : k + 65536])
    y = rng.integers(10, size=n)
    net = xpbp.Network(SIZES, dtype="float32", device="cpu", seed=1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the peak so far: X, y and the network
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    net.fit(X, y, epochs=1, batch_size=BATCH, eta=0.1, progress=False)
    traced = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rows": n, "data_bytes": X.nbytes + y.nbytes, "traced_peak_bytes": traced, "rss_growth_bytes": after - before}


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores; NumPy {m['numpy']} ({m['numpy_blas']}, kernel {m['blas']['kernel']}).",
        "",
        f"`fit` of {'-'.join(map(str, SIZES))}, m={BATCH}, float32, one epoch: what it holds beyond X and y.",
        "",
        "| N | X and y | NumPy's peak during fit (tracemalloc) | of the data | growth of peak RSS | of the data |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        data = r["data_bytes"]
        lines.append(
            f"| {r['rows']:,} | {data / _MIB:,.0f} MiB | {r['traced_peak_bytes'] / _MIB:,.1f} MiB "
            f"| {r['traced_peak_bytes'] / data:.3f} | {r['rss_growth_bytes'] / _MIB:,.1f} MiB "
            f"| {r['rss_growth_bytes'] / data:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated N")
    parser.add_argument("--out", type=Path, default=None, help="directory for memory-<machine>.json and .md")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child's N
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return 0
    rows = []
    for n in (int(r) for r in args.rows.split(",")):
        child = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--one", str(n)], capture_output=True, text=True)
        if child.returncode != 0:
            raise SystemExit(f"benchmarks.memory: N={n} failed: {child.stderr.strip()[-2000:]}")
        rows.append(json.loads(child.stdout))
        print(f"N={n:,}: {rows[-1]}", file=sys.stderr)
    results = {"machine": report.machine(), "rows": rows}
    print(markdown(results))
    if args.out is not None:
        report.write_named(results, args.out, "memory", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
