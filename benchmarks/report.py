"""Benchmark results: the machine they ran on, the targets, and the JSON, Markdown and
PNG files under benchmarks/results/."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path

from xpbp import bench

IMPLS = ("xpbp fit", "xpbp step", "gemm", "nielsen", "torch", "sklearn", "jax step", "jax scan")
RATIOS = {"fit/gemm": "gemm", "fit/jax scan": "jax scan"}  # column title: the peer xpbp's fit is divided by


def machine() -> dict:
    """``xpbp.bench.machine()``, with the versions of the peers that are installed."""
    info = bench.machine()
    for name in ("torch", "sklearn", "jax"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        info[name] = module.__version__
    try:
        import torch

        info["torch_blas"] = "MKL" if torch.backends.mkl.is_available() else "other"
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


# The cells of the CPU-speed issue, where XLA's compiled epoch was measured ahead of xpbp or close.
JAX_CELLS = (((784, 30, 10), 10, "float64"), ((784, 30, 10), 10, "float32"), ((784, 100, 10), 128, "float32"),
             ((784, 1024, 1024, 10), 1024, "float32"))


def _lookup(rows: list[dict]):
    table = {(tuple(r["net"]), r["batch"], r["dtype"], r["device"], r["impl"]): r["median"] for r in rows}
    return lambda net, batch, dtype, device, impl: table.get((tuple(net), batch, dtype, device, impl))


def targets(rows: list[dict], memory: list[dict] = ()) -> list[dict]:
    """Each target as measured: value, threshold and met/short, or why it was not measured."""
    get = _lookup(rows)
    small, big = (784, 30, 10), (784, 1024, 1024, 10)
    out = []
    for m in memory:  # a ceiling, not a floor: at most 1.5× what the equations need
        value = m["peak_bytes"] / m["need_bytes"]
        out.append({"target": f"{m['device'].split(':')[0].upper()} {m['dtype']}: peak step memory / need of w, b, ∇C, z, a, δ, "
                              f"{'-'.join(map(str, m['net']))} b{m['batch']} (at most)",
                    "value": round(value, 3), "threshold": 1.5, "status": "met" if value <= 1.5 else "short"})
    if not any(m["device"].startswith("cuda") for m in memory):
        out.append({"target": "GPU float32: peak step memory / need, 784-1024-1024-10 b1024 (at most 1.5)", "value": None,
                    "threshold": None, "status": "not measured: no CUDA device"})

    def ratio(name, num, den, threshold):
        if num is None or den is None:
            out.append({"target": name, "value": None, "threshold": threshold, "status": "not measured"})
        else:
            value = num / den
            status = "info" if threshold is None else ("met" if value >= threshold else "short")
            out.append({"target": name, "value": round(value, 3), "threshold": threshold, "status": status})

    for dtype in ("float32", "float64"):
        ratio(f"CPU {dtype}: fit epoch / bare step, 784-30-10 b10", get(small, 10, dtype, "cpu", "xpbp fit"),
              get(small, 10, dtype, "cpu", "xpbp step"), 0.9)
    ratio("CPU float64: fit / Nielsen per-example, 784-30-10 b10", get(small, 10, "float64", "cpu", "xpbp fit"),
          get(small, 10, "float64", "cpu", "nielsen"), 8.0)
    ratio("CPU float32: fit / PyTorch eager, 784-30-10 b10", get(small, 10, "float32", "cpu", "xpbp fit"),
          get(small, 10, "float32", "cpu", "torch"), 4.0)
    ratio("CPU float32: step / NumPy GEMM ceiling, 784-1024-1024-10 b1024", get(big, 1024, "float32", "cpu", "xpbp step"),
          get(big, 1024, "float32", "cpu", "gemm"), 0.88)
    ratio("CPU float32: step / PyTorch eager, 784-1024-1024-10 b1024", get(big, 1024, "float32", "cpu", "xpbp step"),
          get(big, 1024, "float32", "cpu", "torch"), None)
    for net, batch, dtype in JAX_CELLS:  # ahead of the epoch XLA compiles whole
        ratio(f"CPU {dtype}: fit / JAX lax.scan epoch, {'-'.join(map(str, net))} b{batch}",
              get(net, batch, dtype, "cpu", "xpbp fit"), get(net, batch, dtype, "cpu", "jax scan"), 1.0)
    cuda = sorted({r["device"] for r in rows if r["device"].startswith("cuda")})
    if not cuda:
        for name in ("GPU: xpbp fit >= PyTorch CUDA eager in every cell", "GPU: xpbp fit >= 2x PyTorch CUDA at batch 10",
                     "GPU float32: step / cuBLAS GEMM ceiling, 784-1024-1024-10 b1024 (>= 0.6)",
                     "GPU/CPU fit throughput, 784-1024-1024-10 b1024 float32 (>= 50)"):
            out.append({"target": name, "value": None, "threshold": None, "status": "not measured: no CUDA device"})
        return out
    dev = cuda[0]
    cells = {(tuple(r["net"]), r["batch"], r["dtype"]) for r in rows if r["device"] == dev}
    pairs = [(get(*c, dev, "xpbp fit"), get(*c, dev, "torch")) for c in sorted(cells)]
    pairs = [(a, b) for a, b in pairs if a and b]
    if pairs:
        out.append({"target": "GPU: xpbp fit / PyTorch CUDA eager, worst cell", "value": round(min(a / b for a, b in pairs), 3),
                    "threshold": 1.0, "status": "met" if min(a / b for a, b in pairs) >= 1 else "short"})
        b10 = [(get(*c, dev, "xpbp fit"), get(*c, dev, "torch")) for c in sorted(cells) if c[1] == 10]
        b10 = [a / b for a, b in b10 if a and b]
        if b10:
            out.append({"target": "GPU: xpbp fit / PyTorch CUDA eager at batch 10, worst", "value": round(min(b10), 3),
                        "threshold": 2.0, "status": "met" if min(b10) >= 2 else "short"})
    ratio("GPU float32: step / cuBLAS GEMM ceiling, 784-1024-1024-10 b1024", get(big, 1024, "float32", dev, "xpbp step"),
          get(big, 1024, "float32", dev, "gemm"), 0.6)
    ratio("GPU/CPU fit throughput, 784-1024-1024-10 b1024 float32", get(big, 1024, "float32", dev, "xpbp fit"),
          get(big, 1024, "float32", "cpu", "xpbp fit"), 50.0)
    return out


def assemble(rows: list[dict], notes: list[str], *, memory: list[dict] = (), mode: str, seconds: float,
             step_flops: dict) -> dict:
    for r in rows:
        if r["impl"] in ("gemm", "xpbp step"):
            key = f"{'-'.join(map(str, r['net']))} b{r['batch']}"
            r["gflops"] = round(step_flops[key] * r["median"] / r["batch"] / 1e9, 1)
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "mode": mode,
            "seconds": round(seconds, 1), "machine": machine(), "notes": notes, "targets": targets(rows, memory),
            "memory": list(memory), "rows": rows}


def _fmt(rate: float | None) -> str:
    if rate is None:
        return "–"
    return f"{rate / 1000:.1f}k" if rate < 1e6 else f"{rate / 1e6:.2f}M"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a / b:.2f}"


def markdown(results: dict) -> str:
    m = results["machine"]
    gpus = ", ".join(d["name"] for d in m["cuda"].get("devices", [])) or "none"
    blas = m.get("blas")
    kernel = (f"kernel {blas['kernel'] or 'unknown'}"
              + "".join(f", {k}={v}" for k, v in blas["forced_by"].items())) if blas else "kernel not recorded"
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; GPU: {gpus}; NumPy {m['numpy']} ({m['numpy_blas']}, {kernel}); "
             f"PyTorch {m.get('torch', '–')}; scikit-learn {m.get('sklearn', '–')}; JAX {m.get('jax', '–')}. "
             f"{results['mode']} run, {results['date']}.", "",
             "Training throughput, examples/s (median of the rounds; spread in the JSON):", "",
             "| net | batch | dtype | device | " + " | ".join(IMPLS) + " | " + " | ".join(RATIOS) + " |",
             "|---|---:|---|---|" + "---:|" * (len(IMPLS) + len(RATIOS))]
    get = _lookup(results["rows"])
    cells = sorted({(tuple(r["net"]), r["batch"], r["dtype"], r["device"]) for r in results["rows"]},
                   key=lambda c: (c[3], len(c[0]), c[0], c[1], c[2]))
    for net, batch, dtype, device in cells:
        rates = [_fmt(get(net, batch, dtype, device, impl)) for impl in IMPLS]
        rates += [_ratio(get(net, batch, dtype, device, "xpbp fit"), get(net, batch, dtype, device, peer))
                  for peer in RATIOS.values()]
        lines.append(f"| {'-'.join(map(str, net))} | {batch} | {dtype} | {device} | " + " | ".join(rates) + " |")
    lines += ["", "| target | measured | needed | status |", "|---|---:|---:|---|"]
    for t in results["targets"]:
        value = "–" if t["value"] is None else f"{t['value']:.2f}"
        needed = "–" if t["threshold"] is None else f"{t['threshold']:g}"
        lines.append(f"| {t['target']} | {value} | {needed} | {t['status']} |")
    for note in results["notes"]:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines)


slug = bench.slug


def plot(results: dict, path: Path) -> None:
    m = results["machine"]
    bench.plot(results["rows"], path, f"training throughput on {m['cpu']} ({m['cores']} cores)")


def write_named(results: dict, out: Path, name: str, markdown: Callable[[dict], str]) -> Path:
    """`results` as `<name>-<machine>.json` and `.md` (by `markdown`) under `out`; the common
    stem, for a plot beside them."""
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"{name}-{slug(results['machine'])}"
    base.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    base.with_suffix(".md").write_text(markdown(results))
    return base


def write(results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    base = out / slug(results["machine"])
    paths = [base.with_suffix(".json"), base.with_suffix(".md")]
    paths[0].write_text(json.dumps(results, indent=1) + "\n")
    paths[1].write_text(markdown(results) + "\n")
    try:
        plot(results, base.with_suffix(".png"))
        paths.append(base.with_suffix(".png"))
    except ImportError:
        results["notes"].append("matplotlib is not installed: no plot")
    return paths
