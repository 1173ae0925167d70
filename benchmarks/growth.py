"""How `fit`'s cost grows with the work: ``python -m benchmarks.growth [--out DIR]``.

Three sweeps on the CPU, float32, each point a whole ``fit`` epoch (the median of
three, after one to warm up) beside the matrix products of its step alone (the GEMM
ceiling, ``xpbp.bench.gemm``), measured in turn:

- **N**, the examples, at ``784-100-10`` m=128: is an epoch linear in N?
- **width** W of ``784-W-10`` at m=128 (20,000 examples): where does the step become the GEMM's?
- **batch** m at ``784-100-10`` (30,000 examples): what small batches cost per example.

It writes ``growth-<machine>.json``, ``.md`` and a plot with the ceiling beside each curve.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from xpbp import bench

from . import report

SWEEPS = {
    "N": [((784, 100, 10), 128, n) for n in (10_000, 30_000, 100_000, 300_000)],
    "width": [((784, w, 10), 128, 20_000) for w in (30, 100, 300, 1000)],
    "batch": [((784, 100, 10), m, 30_000) for m in (10, 32, 128, 512, 2048)],
}


def point(sizes: tuple[int, ...], batch: int, n: int, repeats: int = 3) -> dict:
    """One point: the epoch's seconds and examples/s, and the GEMM ceiling's examples/s."""
    cell = bench.Cell(sizes, batch, "float32", "cpu")
    rates = bench.measure({"fit": bench.fit_units(cell, n), "gemm": bench.gemm(cell, 0.2)}, repeats)
    fit, gemm = statistics.median(rates["fit"]), statistics.median(rates["gemm"])
    return {"sizes": list(sizes), "batch": batch, "examples": n, "epoch_seconds": n / fit, "fit": fit, "gemm": gemm}


def markdown(results: dict) -> str:
    m = results["machine"]
    kernel = m["blas"]["kernel"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; NumPy {m['numpy']} ({m['numpy_blas']}, kernel {kernel}).", ""]
    for sweep, points in results["sweeps"].items():
        lines += [f"Sweep over {sweep}:", "", "| net | m | N | epoch | fit examples/s | GEMM ceiling | fit / ceiling |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for p in points:
            lines.append(f"| {'-'.join(map(str, p['sizes']))} | {p['batch']} | {p['examples']:,} | {p['epoch_seconds']:.3f} s "
                         f"| {p['fit'] / 1e3:.1f}k | {p['gemm'] / 1e3:.1f}k | {p['fit'] / p['gemm']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (sweep, points) in zip(axes, results["sweeps"].items()):
        x = [p["examples"] if sweep == "N" else p["sizes"][1] if sweep == "width" else p["batch"] for p in points]
        if sweep == "N":
            ax.plot(x, [p["epoch_seconds"] for p in points], "o-", label="fit epoch")
            ax.plot(x, [p["examples"] / p["gemm"] for p in points], "s--", label="GEMM ceiling")
            ax.set_ylabel("seconds per epoch")
        else:
            ax.plot(x, [p["fit"] for p in points], "o-", label="fit")
            ax.plot(x, [p["gemm"] for p in points], "s--", label="GEMM ceiling")
            ax.set_ylabel("examples/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel({"N": "examples N (784-100-10, m=128)", "width": "hidden width W (784-W-10, m=128)",
                       "batch": "mini-batch m (784-100-10)"}[sweep])
        ax.legend()
    m = results["machine"]
    fig.suptitle(f"xpbp fit as the work grows: {m['cpu']}, {m['cores']} cores, float32, kernel {m['blas']['kernel']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.growth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="directory for growth-<machine>.json, .md and .png")
    args = parser.parse_args(argv)
    sweeps = {}
    for sweep, points in SWEEPS.items():
        sweeps[sweep] = []
        for sizes, batch, n in points:
            sweeps[sweep].append(point(sizes, batch, n))
            print(f"{sweep}: {sweeps[sweep][-1]}", file=sys.stderr)
    results = {"machine": report.machine(), "sweeps": sweeps}
    print(markdown(results))
    if args.out is not None:
        base = report.write_named(results, args.out, "growth", markdown)
        plot(results, base.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
