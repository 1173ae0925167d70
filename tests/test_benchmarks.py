"""The benchmark suite's bookkeeping: targets judged from measured rows, and its files.
(The timings themselves are never asserted: they live in benchmarks/results.)"""

import json

import pytest

import xpbp
from benchmarks import report, suite


def row(net, batch, dtype, device, impl, median):
    return {"net": list(net), "batch": batch, "dtype": dtype, "device": device, "impl": impl,
            "median": median, "min": median, "max": median, "samples": [median]}


SMALL, BIG = (784, 30, 10), (784, 1024, 1024, 10)


def test_targets_met_short_and_unmeasured():
    rows = [row(SMALL, 10, "float32", "cpu", "xpbp fit", 95.0), row(SMALL, 10, "float32", "cpu", "xpbp step", 100.0),
            row(SMALL, 10, "float64", "cpu", "xpbp fit", 80.0), row(SMALL, 10, "float64", "cpu", "nielsen", 10.0),
            row(SMALL, 10, "float32", "cpu", "torch", 30.0),
            row(BIG, 1024, "float32", "cpu", "xpbp step", 8.0), row(BIG, 1024, "float32", "cpu", "gemm", 10.0)]
    got = {t["target"]: t for t in report.targets(rows)}
    assert got["CPU float32: fit epoch / bare step, 784-30-10 b10"]["status"] == "met"
    assert got["CPU float64: fit epoch / bare step, 784-30-10 b10"]["status"] == "not measured"
    assert got["CPU float64: fit / Nielsen per-example, 784-30-10 b10"] | {} == {
        "target": "CPU float64: fit / Nielsen per-example, 784-30-10 b10", "value": 8.0, "threshold": 8.0, "status": "met"}
    assert got["CPU float32: fit / PyTorch eager, 784-30-10 b10"]["status"] == "short"
    assert got["CPU float32: step / NumPy GEMM ceiling, 784-1024-1024-10 b1024"]["value"] == pytest.approx(0.8)
    assert all(t["status"].startswith("not measured") for name, t in got.items() if name.startswith("GPU"))


def test_step_flops_counts_each_product():
    # forward 2·m·n_in·n_out for each layer, BP4 the same, BP2 only above the first layer
    assert suite.Cell((4, 3, 2), 5, "float32", "cpu").flops == 2 * 5 * (4 * 3 * 2 + 3 * 2 * 3)


def test_files_are_written(tmp_path):
    rows = [row(SMALL, b, "float32", "cpu", impl, 1000.0 * b) for b in (10, 128) for impl in ("xpbp fit", "xpbp step")]
    rows.append(row(SMALL, 10, "float32", "cpu", "gemm", 40000.0))
    results = report.assemble(rows, ["a note"], mode="quick", seconds=1.0,
                              step_flops={"784-30-10 b10": 10, "784-30-10 b128": 128})
    paths = report.write(results, tmp_path)
    assert [p.suffix for p in paths] == [".json", ".md", ".png"]
    data = json.loads(paths[0].read_text())
    assert data["machine"]["cores"] >= 1 and [r["gflops"] for r in data["rows"] if r["impl"] == "xpbp step"] == [0.0, 0.0]
    table = paths[1].read_text()
    assert "| 784-30-10 | 10 | float32 | cpu | 10.0k | 10.0k | 40.0k |" in table
    assert data["machine"]["blas"]["kernel"] == xpbp.blas.info()["kernel"]  # the kernel that ran, in the record
    assert f"kernel {data['machine']['blas']['kernel'] or 'unknown'}" in table
    assert table.count(" | 0.25 | – |") == 1 and "| 784-30-10 | 128 | float32 | cpu | 128.0k | 128.0k | – |" in table


def test_compare_imports_a_revision_beside_the_working_tree(tmp_path, capsys):
    """benchmarks.compare loads xpbp at a git revision under its own name, trains both side
    by side and reports one ratio per round."""
    from benchmarks import compare

    old = compare.load_revision("HEAD", tmp_path)
    assert old.__name__.startswith("xpbp_") and old.__file__.startswith(str(tmp_path))
    assert old.Network is not xpbp.Network
    assert compare.main(["HEAD", "--sizes", "4,3,2", "--batch", "5", "--examples", "40", "--rounds", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out[0].split(": ")[-1].split()) == 3 and out[1].startswith("median ")
    with pytest.raises(SystemExit, match="not a git revision"):
        compare.load_revision("no-such-revision", tmp_path)


def test_step_memory_is_measured_and_near_what_the_equations_need():
    """tracemalloc sees the step's work buffers (else the peak would fall below the need),
    and the step keeps nothing beyond them and the gradient: one more buffer per layer,
    such as a separate one for σ′, would add 10%."""
    m = suite.step_memory(suite.Cell((784, 512, 256, 10), 256, "float32", "cpu"))
    params, activations, batch = 784 * 512 + 512 * 256 + 256 * 10 + 778, 778 * 256, 794 * 256  # 4 bytes each
    assert m["need_bytes"] == 4 * (2 * params + 3 * activations + batch)
    assert 1.0 <= m["peak_bytes"] / m["need_bytes"] <= 1.05
    judged = {t["target"]: t for t in report.targets([], [m, {**m, "device": "cuda:0", "peak_bytes": 2 * m["need_bytes"]}])}
    assert [t["status"] for name, t in judged.items() if "memory" in name] == ["met", "short"]


def test_the_busy_machine_benchmark_runs(tmp_path, capsys):
    """benchmarks.busy on a tiny cell, one other training beside it: both policies measured."""
    from benchmarks import busy

    assert busy.main(["--sizes", "8,4,2", "--batch", "4", "--examples", "64", "--epochs", "1", "--others", "1",
                      "--out", str(tmp_path)]) == 0
    rows = json.loads(next(tmp_path.glob("busy-*.json")).read_text())["rows"]
    assert [r["policy"] for r in rows] == ["xpbp's choice", "all cores"] and all(r["busy"] > 0 for r in rows)
    assert "| xpbp's choice | 1 |" in capsys.readouterr().out


def test_the_memory_benchmark_measures_fit_beyond_the_data():
    from benchmarks import memory

    one = memory.measure(4000)
    assert one["rows"] == 4000 and one["data_bytes"] == 4000 * 784 * 4 + 4000 * 8
    # the one-hot targets (4000 × 10 float32) at least, and far less than a copy of X
    assert 4000 * 10 * 4 <= one["traced_peak_bytes"] < one["data_bytes"] / 2
    table = memory.markdown({"machine": {"cpu": "c", "cores": 2, "numpy": "2", "numpy_blas": "b", "blas": {"kernel": "K"}},
                             "rows": [one]})
    assert "| 4,000 | 12 MiB |" in table and "kernel K" in table


def test_the_growth_benchmark_records_each_point_beside_its_ceiling(tmp_path):
    from benchmarks import growth

    p = growth.point((20, 8, 3), 16, 512, repeats=1)
    assert p["examples"] == 512 and p["epoch_seconds"] == pytest.approx(512 / p["fit"]) and p["gemm"] > 0
    machine = {"cpu": "c", "cores": 2, "numpy": "2", "numpy_blas": "b", "blas": {"kernel": "K"}}
    results = {"machine": machine, "sweeps": {"N": [p], "width": [p], "batch": [p]}}
    table = growth.markdown(results)
    assert "| 20-8-3 | 16 | 512 |" in table and table.count("Sweep over") == 3
    growth.plot(results, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0
