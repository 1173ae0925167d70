"""The benchmark grid: who is timed, how, and which targets the numbers are held to.

Every cell (network, batch size, dtype, device) sets its competitors up once, warms
each up, then times them in turn, rotating the order each round, so that a noisy
shared machine hits all of them alike; a cell reports each competitor's median
throughput (examples/s) and the spread of its rounds. On a GPU the clock is a pair of
CUDA events around work that ends in a synchronisation; on the CPU, perf_counter.

Competitors:
- ``xpbp fit``: whole ``Network.fit`` epochs, data on the device, shuffling included
  (the epoch's own timer, which ends after the epoch's one host synchronisation);
- ``xpbp step``: bare training steps (forward, BP1-BP4, update) on one mini-batch;
- ``nielsen``: the book's per-example ``update_mini_batch`` (batch 10, CPU);
- ``torch``: PyTorch eager epochs over shuffled data (CPU and CUDA);
- ``sklearn``: one ``MLPClassifier.partial_fit`` epoch, solver 'sgd' (CPU);
- ``gemm``: the matrix products of one training step alone, the backend's ceiling.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import xpbp
from xpbp import backend, training

from . import nielsen, report

NETS = ([784, 30, 10], [784, 100, 10], [784, 1024, 1024, 10])
BATCHES = (10, 128, 1024)
DTYPES = ("float32", "float64")
ETA = 0.1


@dataclass(frozen=True)
class Cell:
    sizes: tuple[int, ...]
    batch: int
    dtype: str
    device: str

    @property
    def key(self) -> str:
        return f"{'-'.join(map(str, self.sizes))} b{self.batch} {self.dtype} {self.device}"


# A unit of work returns (examples processed, seconds taken).
Unit = Callable[[], tuple[int, float]]


def _data(n: int, cell: Cell, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, cell.sizes[0]), dtype=np.float64).astype(cell.dtype), rng.integers(cell.sizes[-1], size=n)


class Clock:
    """Wall time on the CPU; CUDA events on a GPU (the work must end with a synchronisation)."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        if self.cuda:
            import cupy

            self.cupy = cupy

    def time(self, work: Callable[[], None]) -> float:
        if not self.cuda:
            start = time.perf_counter()
            work()
            return time.perf_counter() - start
        start, end = self.cupy.cuda.Event(), self.cupy.cuda.Event()
        start.record()
        work()
        end.record()
        end.synchronize()
        return self.cupy.cuda.get_elapsed_time(start, end) / 1000.0


def _repeat_for(unit_time: Callable[[int], float], target: float) -> int:
    """How many repetitions of a piece of work take about ``target`` seconds."""
    k = 1
    while True:
        t = unit_time(k)
        if t >= target / 4 or k >= 1 << 16:
            return max(1, int(k * target / max(t, 1e-9)))
        k *= 2


# ---------------------------------------------------------------------- competitors


def _bare_step(cell: Cell) -> tuple[xpbp.Network, Any, Any, Callable[[], Callable[[], None]]]:
    """A fresh network, one mini-batch (x, targets; examples as columns) on the cell's
    device, and ``start``, which makes the training step's buffers and returns a function
    that runs one step on that batch: the step ``fit`` runs, without the epoch around it."""
    net = xpbp.Network(list(cell.sizes), dtype=cell.dtype, device=cell.device, seed=0)
    X, y = _data(cell.batch, cell)
    x = xpbp.to_device(X.T.copy(), cell.device)
    t = xpbp.to_device(np.eye(cell.sizes[-1], dtype=cell.dtype)[y].T.copy(), cell.device)

    def start() -> Callable[[], None]:
        with backend.using(net.device):
            trainer = training.Trainer(net, training.Run(cell.batch, 1, cell.batch, ETA), training.Data(x.T, t.T))

        def step() -> None:
            with backend.using(net.device):
                trainer.step(x, t, ETA)

        return step

    return net, x, t, start


def xpbp_step(cell: Cell, target: float) -> Unit:
    step = _bare_step(cell)[-1]()
    clock = Clock(cell.device)

    def steps(k: int) -> float:
        def work():
            for _ in range(k):
                step()

        return clock.time(work)

    k = _repeat_for(steps, target)
    return lambda: (k * cell.batch, steps(k))


def _epoch_examples(cell: Cell, target: float) -> int:
    """A data-set size for one epoch of about ``target`` seconds at xpbp's step rate."""
    examples, seconds = xpbp_step(cell, target / 4)()
    n = int(examples / seconds * target) // cell.batch * cell.batch
    return int(min(max(n, 4 * cell.batch), 60000 // cell.batch * cell.batch))


def xpbp_fit(cell: Cell, n: int) -> Unit:
    net = xpbp.Network(list(cell.sizes), dtype=cell.dtype, device=cell.device, seed=0)
    X, y = _data(n, cell)
    X, y = xpbp.to_device(X, cell.device), xpbp.to_device(y, cell.device)

    def epoch():
        history = net.fit(X, y, epochs=1, batch_size=cell.batch, eta=ETA, progress=False)
        return n, history.seconds[0]

    return epoch


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

    k = _repeat_for(steps, target)
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


def step_flops(cell: Cell) -> int:
    """Multiply-adds ×2 of one step's matrix products: forward w·a, BP2's wᵀδ (not for the
    first layer) and BP4's δ·aᵀ, per layer."""
    return sum(2 * cell.batch * n_in * n_out * (3 if l else 2) for l, (n_in, n_out) in enumerate(zip(cell.sizes[:-1], cell.sizes[1:])))


def gemm(cell: Cell, target: float) -> Unit:
    """The step's matrix products alone, into preallocated outputs: the backend's ceiling."""
    xp = backend.resolve(cell.device)
    rng = np.random.default_rng(0)
    put = lambda *shape: xpbp.to_device(rng.standard_normal(shape).astype(cell.dtype), cell.device)  # noqa: E731
    products = []
    for l, (n_in, n_out) in enumerate(zip(cell.sizes[:-1], cell.sizes[1:])):
        w, a, d = put(n_out, n_in), put(n_in, cell.batch), put(n_out, cell.batch)
        products.append((w, a, put(n_out, cell.batch)))  # z = w a
        if l:
            products.append((w.T, d, put(n_in, cell.batch)))  # BP2: wᵀ δ
        products.append((d, a.T, put(n_out, n_in)))  # BP4: δ aᵀ
    clock = Clock(cell.device)

    def repeat(k: int) -> float:
        def work():
            for _ in range(k):
                for left, right, out in products:
                    xp.matmul(left, right, out=out)

        return clock.time(work)

    k = _repeat_for(repeat, target)
    return lambda: (k * cell.batch, repeat(k))


# ---------------------------------------------------------------------- memory


MEMORY_CELL = ((784, 1024, 1024, 10), 1024, "float32")


def _peak_bytes(device: str, work: Callable[[], None]) -> int:
    """The most memory ``work`` held at once on ``device`` beyond what was held before it:
    NumPy's allocations as tracemalloc sees them, or the growth of CuPy's memory pool
    (emptied first; a pool keeps what it once held, so its size afterwards is its peak)."""
    if not device.startswith("cuda"):
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
    net, x, t, start = _bare_step(cell)
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
    units: dict[str, Unit] = {"xpbp step": xpbp_step(cell, target), "gemm": gemm(cell, target)}
    n = _epoch_examples(cell, target)
    units["xpbp fit"] = xpbp_fit(cell, n)
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
    return units


def measure(cell: Cell, repeats: int, target: float, notes: list[str]) -> list[dict]:
    units = competitors(cell, target, notes)
    for unit in units.values():
        unit()  # warm-up: first-touch memory, BLAS threads, kernel compilation
    samples: dict[str, list[float]] = {name: [] for name in units}
    names = list(units)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order each round
            examples, seconds = units[name]()
            samples[name].append(examples / seconds)
    rows = []
    for name, rates in samples.items():
        rows.append({"net": list(cell.sizes), "batch": cell.batch, "dtype": cell.dtype, "device": cell.device,
                     "impl": name, "median": statistics.median(rates), "min": min(rates), "max": max(rates),
                     "samples": rates})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small grid in under a minute (what CI runs)")
    parser.add_argument("--devices", default=None, help="comma-separated devices (default: cpu, plus cuda if usable)")
    parser.add_argument("--out", default=None, help="directory for the JSON, Markdown and PNG results "
                        "(default: benchmarks/results for a full run; none for --quick)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)

    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda:0"] if backend.cuda_available() else [])
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
                                  f"{'-'.join(map(str, s))} b{b}": step_flops(Cell(tuple(s), b, "float32", "cpu"))
                                  for s in nets for b in batches})
    print(report.markdown(results))
    out = args.out or (None if args.quick else str(Path(__file__).parent / "results"))
    if out:
        for path in report.write(results, Path(out)):
            print(f"wrote {path}", file=sys.stderr)
    return 0
