"""The benchmark grid: who is timed, how, and which targets the numbers are held to.

Every cell (network, batch size, dtype, device) sets its competitors up once, warms
each up, then times them in turn, rotating the order each round, so that a noisy
shared machine hits all of them alike; a cell reports each competitor's median
throughput (examples/s) and the spread of its rounds. The timing core, and xpbp's own
competitors (fit, bare steps, the GEMM ceiling), are ``xpbp.bench``'s, the same that
``xpbp bench`` runs: this suite adds the peers.

Competitors:
- ``xpbp fit``: whole ``Network.fit`` epochs, data on the device, shuffling included
  (the epoch's own timer, which ends after the epoch's one host synchronisation);
- ``xpbp step``: bare training steps (forward, BP1-BP4, update) on one mini-batch;
- ``nielsen``: the book's per-example ``update_mini_batch`` (batch 10, CPU);
- ``torch``: PyTorch eager epochs over shuffled data (CPU and CUDA);
- ``sklearn``: one ``MLPClassifier.partial_fit`` epoch, solver 'sgd' (CPU);
- ``jax step``, ``jax scan``: JAX's jitted step per mini-batch, and the whole epoch
  compiled by XLA under ``lax.scan`` (CPU; see ``benchmarks/jaxpeer.py``);
- ``gemm``: the matrix products of one training step alone, the backend's ceiling.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xpbp import bench
from xpbp.bench import Cell, Unit

from . import jaxpeer, nielsen, report

_data = bench.data  # the peers train on the same data as xpbp

NETS = ([784, 30, 10], [784, 100, 10], [784, 1024, 1024, 10])
BATCHES = (10, 128, 1024)
DTYPES = ("float32", "float64")
ETA = bench.ETA


def nielsen_step(cell: Cell, target: float) -> Unit:
    net = nielsen.Network(list(cell.sizes), dtype=np.dtype(cell.dtype).type)
    X, y = _data(cell.batch, cell)
    eye = np.eye(cell.sizes[-1], dtype=cell.dtype)
    batch = [(X[i].reshape(-1, 1), eye[y[i]].reshape(-1, 1)) for i in range(cell.batch)]

    def steps(k: int) -> float:
        start = time.perf_counter()
        for _ in range(k):
            net.update_mini_batch(batch, ETA)
        return time.perf_counter() - start

    k = bench.repeat_for(steps, target)
    return lambda: (k * cell.batch, steps(k))


def torch_epoch(cell: Cell, n: int) -> Unit:
    import torch

    dev = "cpu" if cell.device == "cpu" else cell.device
    dtype = getattr(torch, cell.dtype)
    torch.manual_seed(0)
    layers = []
    for n_in, n_out in zip(cell.sizes[:-1], cell.sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers).to(device=dev, dtype=dtype)
    opt = torch.optim.SGD(model.parameters(), lr=ETA)
    X, y = _data(n, cell)
    X = torch.from_numpy(X).to(dev)
    Y = torch.nn.functional.one_hot(torch.from_numpy(y), cell.sizes[-1]).to(device=dev, dtype=dtype)
    cuda = dev.startswith("cuda")

    def epoch():
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            t0 = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        Xe, Ye = X[perm], Y[perm]
        for k in range(0, n, cell.batch):
            a = model(Xe[k : k + cell.batch])
            loss = 0.5 * ((a - Ye[k : k + cell.batch]) ** 2).sum(dim=1).mean()  # quadratic cost, mean over the batch
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if cuda:
            end.record()
            end.synchronize()
            return n, start.elapsed_time(end) / 1000.0
        return n, time.perf_counter() - t0

    return epoch


def sklearn_epoch(cell: Cell, n: int) -> Unit:
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=tuple(cell.sizes[1:-1]), activation="logistic", solver="sgd",
                        batch_size=cell.batch, learning_rate_init=ETA, momentum=0.0, nesterovs_momentum=False,
                        shuffle=True, max_iter=1, random_state=0)
    X, y = _data(n, cell)
    classes = np.arange(cell.sizes[-1])

    def epoch():
        start = time.perf_counter()
        clf.partial_fit(X, y, classes=classes)
        return n, time.perf_counter() - start

    return epoch


# ---------------------------------------------------------------------- memory


MEMORY_CELL = ((784, 1024, 1024, 10), 1024, "float32")


def _peak_bytes(device: str, work: Callable[[], None]) -> int:
    """The most memory ``work`` held at once on ``device`` beyond what was held before it:
    NumPy's allocations as tracemalloc sees them, or the growth of CuPy's memory pool
    (emptied first; a pool keeps what it once held, so its size afterwards is its peak)."""
    if not device.startswith("cuda"):  # (cupy, where it is used, is imported here only: an optional peer)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            work()
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    import cupy

    pool = cupy.get_default_memory_pool()
    cupy.cuda.Device().synchronize()
    pool.free_all_blocks()
    base = pool.total_bytes()
    work()
    cupy.cuda.Device().synchronize()
    return pool.total_bytes() - base


def step_memory(cell: Cell) -> dict:
    """Peak memory of training steps against what the equations need: the weights and
    biases, their gradient, each layer's z, a and δ for the mini-batch, and the mini-batch
    itself (x and y). The step's own peak is measured from a fresh network, so that it
    includes the work buffers its first step makes."""
    net, x, t, start = bench.bare_step(cell)
    params = sum(p.nbytes for p in net.weights + net.biases)
    batch = x.nbytes + t.nbytes

    def steps():
        step = start()
        for _ in range(3):
            step()

    peak = _peak_bytes(cell.device, steps)
    activations = sum(cell.sizes[1:]) * cell.batch * np.dtype(cell.dtype).itemsize
    return {"net": list(cell.sizes), "batch": cell.batch, "dtype": cell.dtype, "device": cell.device,
            "peak_bytes": params + batch + peak, "need_bytes": 2 * params + 3 * activations + batch}


# ---------------------------------------------------------------------- running the grid


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def competitors(cell: Cell, target: float, notes: list[str]) -> dict[str, Unit]:
    units: dict[str, Unit] = {"xpbp step": bench.step_units(cell, target), "gemm": bench.gemm(cell, target)}
    n = bench.examples_for(cell, target)
    units["xpbp fit"] = bench.fit_units(cell, n)
    if cell.device == "cpu" and cell.batch == 10:
        units["nielsen"] = nielsen_step(cell, target)
    if _available("torch"):
        import torch

        if cell.device == "cpu" or torch.cuda.is_available():
            units["torch"] = torch_epoch(cell, n)
    elif "torch" not in " ".join(notes):
        notes.append("torch is not installed: PyTorch skipped")
    if cell.device == "cpu":
        if _available("sklearn"):
            units["sklearn"] = sklearn_epoch(cell, n)
        elif "sklearn" not in " ".join(notes):
            notes.append("scikit-learn is not installed: MLPClassifier skipped")
        if _available("jax"):
            units["jax step"], units["jax scan"] = jaxpeer.jax_step(cell, n), jaxpeer.jax_scan(cell, n)
        elif "jax" not in " ".join(notes):
            notes.append("jax is not installed: the JAX peers skipped")
    return units


def measure(cell: Cell, repeats: int, target: float, notes: list[str]) -> list[dict]:
    rates = bench.measure(competitors(cell, target, notes), repeats)
    return [bench.row(cell, name, r) for name, r in rates.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small grid in under a minute (what CI runs)")
    parser.add_argument("--devices", default=None, help="comma-separated devices (default: cpu, plus cuda if usable)")
    parser.add_argument("--out", default=None, help="directory for the JSON, Markdown and PNG results "
                        "(default: benchmarks/results for a full run; none for --quick)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)

    devices = args.devices.split(",") if args.devices else bench.devices()
    if args.quick:
        nets, batches, dtypes, repeats, target = NETS[:2], (10, 128), ("float32",), args.repeats or 3, 0.05
    else:
        nets, batches, dtypes, repeats, target = NETS, BATCHES, DTYPES, args.repeats or 5, 0.25
    notes: list[str] = []
    rows = []
    started = time.perf_counter()
    for device in devices:
        for sizes in nets:
            for batch in batches:
                for dtype in dtypes:
                    cell = Cell(tuple(sizes), batch, dtype, device)
                    print(f"measuring {cell.key} ...", file=sys.stderr, flush=True)
                    rows.extend(measure(cell, repeats, target, notes))
    memory = [step_memory(Cell(*MEMORY_CELL, device)) for device in devices]
    results = report.assemble(rows, notes, memory=memory, mode="quick" if args.quick else "full",
                              seconds=time.perf_counter() - started, step_flops={
                                  f"{'-'.join(map(str, s))} b{b}": Cell(tuple(s), b, "float32", "cpu").flops
                                  for s in nets for b in batches})
    print(report.markdown(results))
    out = args.out or (None if args.quick else str(Path(__file__).parent / "results"))
    if out:
        for path in report.write(results, Path(out)):
            print(f"wrote {path}", file=sys.stderr)
    return 0
