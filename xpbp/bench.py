"""Training throughput on the devices of this machine: `xpbp bench`.

For each cell of a grid (network, batch size, dtype, device), xpbp's `fit` runs whole
epochs (data on the device, shuffling included) beside the cell's GEMM ceiling (the
training step's matrix products alone, into preallocated outputs), in turn, rotating
the order each round so that a busy machine slows both alike; each reports the median
examples/s of its rounds. On a GPU the clock is a pair of CUDA events around work that
ends in a synchronisation; on the CPU, `time.perf_counter`.

This is the timing core the repository's `benchmarks/` suite uses too, adding its peers
(Nielsen's code, PyTorch, scikit-learn, JAX) to the same cells.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, backend, threads, training
from .network import Network

__all__ = [
    "Cell",
    "Unit",
    "bare_step",
    "data",
    "devices",
    "examples_for",
    "fit_units",
    "gemm",
    "grid",
    "machine",
    "measure",
    "plot",
    "repeat_for",
    "row",
    "run",
    "slug",
    "step_units",
    "summary",
    "table",
]

ETA = 0.1
NETS = ((784, 30, 10), (784, 100, 10), (784, 1024, 1024, 10))
BATCHES = (10, 128, 1024)

# A unit of work: one timed repetition, returning (examples processed, seconds taken).
Unit = Callable[[], tuple[int, float]]


@dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    sizes: tuple[int, ...]
    batch: int
    dtype: str
    device: str

    @property
    def key(self) -> str:
        return f"{'-'.join(map(str, self.sizes))} b{self.batch} {self.dtype} {self.device}"

    @property
    def flops(self) -> int:
        """Floating-point operations of one step's matrix products (`xpbp.threads.step_flops`)."""
        return threads.step_flops(self.sizes, self.batch)


def data(n: int, cell: Cell, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random examples in [0, 1) of the cell's dtype, and random labels."""
    rng = np.random.default_rng(seed)
    return rng.random((n, cell.sizes[0]), dtype=np.float64).astype(cell.dtype), rng.integers(cell.sizes[-1], size=n)


def repeat_for(unit_time: Callable[[int], float], target: float) -> int:
    """How many repetitions of a piece of work take about `target` seconds."""
    k = 1
    while True:
        t = unit_time(k)
        if t >= target / 4 or k >= 1 << 16:
            return max(1, int(k * target / max(t, 1e-9)))
        k *= 2


def bare_step(cell: Cell) -> tuple[Network, Any, Any, Callable[[], Callable[[], None]]]:
    """A fresh network, one mini-batch (x, targets; examples as columns) on the cell's
    device, and `start`, which makes the training step's buffers and returns a function
    that runs one step on that batch: the step `fit` runs, without the epoch around it."""
    net = Network(list(cell.sizes), dtype=cell.dtype, device=cell.device, seed=0)
    X, y = data(cell.batch, cell)
    x = backend.to_device(X.T.copy(), cell.device)
    t = backend.to_device(np.eye(cell.sizes[-1], dtype=cell.dtype)[y].T.copy(), cell.device)

    def start() -> Callable[[], None]:
        with backend.using(net.device):
            trainer = net.trainer(x.T, t.T, epochs=1, batch_size=cell.batch, eta=ETA, progress=False)
        batch = training.Batch(cell.batch, x, t)

        def step() -> None:
            with backend.using(net.device):
                trainer.step(batch, ETA)

        return step

    return net, x, t, start


def step_units(cell: Cell, target: float) -> Unit:
    """Bare training steps on one mini-batch, about `target` seconds a repetition."""
    step = bare_step(cell)[-1]()

    def steps(k: int) -> float:
        def work() -> None:
            for _ in range(k):
                step()

        return backend.elapsed(cell.device, work)

    k = repeat_for(steps, target)
    return lambda: (k * cell.batch, steps(k))


def examples_for(cell: Cell, target: float) -> int:
    """A data-set size for one `fit` epoch of about `target` seconds at xpbp's step rate."""
    examples, seconds = step_units(cell, target / 4)()
    n = int(examples / seconds * target) // cell.batch * cell.batch
    return int(min(max(n, 4 * cell.batch), 60000 // cell.batch * cell.batch))


def fit_units(cell: Cell, n: int) -> Unit:
    """Whole `fit` epochs over n examples on the device, timed by the epoch itself (its
    clock stops after the epoch's one host synchronisation)."""
    net = Network(list(cell.sizes), dtype=cell.dtype, device=cell.device, seed=0)
    X, y = data(n, cell)
    X, y = backend.to_device(X, cell.device), backend.to_device(y, cell.device)

    def epoch() -> tuple[int, float]:
        history = net.fit(X, y, epochs=1, batch_size=cell.batch, eta=ETA, progress=False)
        return n, history.seconds[0]

    return epoch


def gemm(cell: Cell, target: float) -> Unit:
    """The step's matrix products alone, into preallocated outputs: the device's ceiling."""
    xp, rng = backend.resolve(cell.device), np.random.default_rng(0)
    with backend.using(cell.device):
        put = lambda *shape: backend.to_device(np.asarray(rng.standard_normal(size=shape), dtype=cell.dtype), cell.device)  # noqa: E731
        products = []
        for l, (n_in, n_out) in enumerate(zip(cell.sizes[:-1], cell.sizes[1:])):
            w, a, d = put(n_out, n_in), put(n_in, cell.batch), put(n_out, cell.batch)
            products.append((w, a, put(n_out, cell.batch)))  # z = w a
            if l:
                products.append((w.T, d, put(n_in, cell.batch)))  # BP2: wᵀ δ
            products.append((d, a.T, put(n_out, n_in)))  # BP4: δ aᵀ

    def repeat(k: int) -> float:
        def work() -> None:
            with backend.using(cell.device):
                for _ in range(k):
                    for left, right, out in products:
                        xp.matmul(left, right, out=out)

        return backend.elapsed(cell.device, work)

    k = repeat_for(repeat, target)
    return lambda: (k * cell.batch, repeat(k))


def measure(units: dict[str, Unit], repeats: int) -> dict[str, list[float]]:
    """Examples/s of each unit, round by round: each warmed up once, then all timed in turn,
    the order rotating each round."""
    for unit in units.values():
        unit()  # first-touch memory, BLAS threads, kernel compilation
    rates: dict[str, list[float]] = {name: [] for name in units}
    names = list(units)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            examples, seconds = units[name]()
            rates[name].append(examples / seconds)
    return rates


def devices() -> list[str]:
    """The CPU, then every CUDA device CuPy sees."""
    return ["cpu"] + [d["device"] for d in backend.cuda_info().get("devices", [])]


def grid(nets: list[tuple[int, ...]], batches: list[int], dtypes: list[str], devices: list[str]) -> list[Cell]:
    return [Cell(tuple(s), b, t, d) for d in devices for s in nets for b in batches for t in dtypes]


def run(cells: list[Cell], *, repeats: int = 3, target: float = 0.25, say: Callable[[str], None] = lambda _: None) -> list[dict]:
    """One row per cell and implementation (`xpbp fit`, `gemm`): the median examples/s
    of the rounds, their spread, and every round."""
    rows = []
    for cell in cells:
        say(f"measuring {cell.key} ...")
        units = {"xpbp fit": fit_units(cell, examples_for(cell, target)), "gemm": gemm(cell, target)}
        rows += [row(cell, name, rates) for name, rates in measure(units, repeats).items()]
    return rows


def row(cell: Cell, impl: str, rates: list[float]) -> dict[str, Any]:
    return {
        "net": list(cell.sizes),
        "batch": cell.batch,
        "dtype": cell.dtype,
        "device": cell.device,
        "impl": impl,
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "samples": rates,
    }


def machine() -> dict[str, Any]:
    """The processor, its cores, the versions and the BLAS that the numbers depend on."""
    cpu = "unknown"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1) if found else platform.processor() or cpu
    except OSError:
        cpu = platform.processor() or cpu
    blas = backend.blas_info()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "xpbp": __version__,
        "numpy": np.__version__,
        "numpy_blas": f"{blas['name'] or '?'} {blas['version'] or ''}".strip(),
        "blas": blas,  # the library, threads and kernel that ran, and what forced it
        "cuda": backend.cuda_info(),
    }


def slug(m: dict[str, Any]) -> str:
    """A file name for results of machine `m`."""
    gpus = [d["name"] for d in m["cuda"].get("devices", [])]
    name = f"{m['cpu']}-{m['cores']}c" + (f"-{gpus[0]}" if gpus else "")
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def summary(rows: list[dict]) -> list[dict[str, Any]]:
    """Per cell: xpbp's examples/s on each device, its fraction of that device's GEMM
    ceiling, and each GPU's throughput over the CPU's."""
    get = {(tuple(r["net"]), r["batch"], r["dtype"], r["device"], r["impl"]): r["median"] for r in rows}
    out = []
    for net, batch, dtype, device in sorted({(tuple(r["net"]), r["batch"], r["dtype"], r["device"]) for r in rows}):
        fit, ceiling = get.get((net, batch, dtype, device, "xpbp fit")), get.get((net, batch, dtype, device, "gemm"))
        cpu = get.get((net, batch, dtype, "cpu", "xpbp fit"))
        out.append(
            {
                "net": list(net),
                "batch": batch,
                "dtype": dtype,
                "device": device,
                "examples_per_s": fit,
                "gemm_examples_per_s": ceiling,
                "of_ceiling": fit / ceiling if fit and ceiling else None,
                "over_cpu": fit / cpu if fit and cpu and device != "cpu" else None,
            }
        )
    return out


def table(cells: list[dict[str, Any]]) -> str:
    lines = [
        "| net | batch | dtype | device | examples/s | of GEMM ceiling | over the CPU |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for c in cells:
        over = f"{c['over_cpu']:.1f}×" if c["over_cpu"] else "–"
        ceiling = f"{c['of_ceiling']:.0%}" if c["of_ceiling"] else "–"
        lines.append(
            f"| {'-'.join(map(str, c['net']))} | {c['batch']} | {c['dtype']} | {c['device']} | "
            f"{c['examples_per_s']:,.0f} | {ceiling} | {over} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: str | os.PathLike, title: str) -> None:
    """Examples/s against batch size, one panel per network (float32, or the one dtype
    measured), a line per implementation and device, the GEMM ceiling dashed. Needs matplotlib."""
    import matplotlib  # the optional extra, as in xpbp.plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtype = "float32" if any(r["dtype"] == "float32" for r in rows) else rows[0]["dtype"]
    nets = sorted({tuple(r["net"]) for r in rows}, key=lambda n: (len(n), n))
    fig, axes = plt.subplots(1, len(nets), figsize=(5 * len(nets), 4.2), constrained_layout=True, squeeze=False)
    for ax, net in zip(axes[0], nets):
        mine = [r for r in rows if tuple(r["net"]) == net and r["dtype"] == dtype]
        for impl, device in sorted({(r["impl"], r["device"]) for r in mine}):
            line = sorted((r["batch"], r["median"]) for r in mine if r["impl"] == impl and r["device"] == device)
            ax.plot(*zip(*line), "--" if impl == "gemm" else "-", marker="o", label=f"{impl} ({device})")
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="examples/s", title="-".join(map(str, net)) + f", {dtype}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
