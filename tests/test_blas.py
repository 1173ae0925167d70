"""What `xpbp info` and `xpbp bench` say about the BLAS: the kernel that runs, and a
warning where the environment forces one older than the CPU's."""

import json
import os

import pytest
from test_cli import run
from threadpoolctl import threadpool_info

from xpbp import blas, cli


def test_info_names_the_library_threads_and_kernel_that_threadpoolctl_sees():
    found = blas.info()
    loaded = next(lib for lib in threadpool_info() if lib["user_api"] == "blas")
    assert found["library"] == loaded["internal_api"] and found["kernel"] == loaded.get("architecture")
    assert found["threads"] == loaded["num_threads"] and found["threading_layer"] == loaded["threading_layer"]
    assert set(found["extensions"]) <= {"AVX-512", "AVX2", "FMA", "AVX", "SSE4.2"}
    assert set(found["forced_by"]) <= set(blas.FORCING)


@pytest.mark.parametrize(
    "forced, extensions, warned",
    [
        ("Haswell", ("AVX-512", "AVX2", "FMA", "AVX"), "forces OpenBLAS's Haswell kernel (AVX2) on a CPU with AVX-512"),
        ("haswell", ("AVX-512", "AVX2"), "on a CPU with AVX-512"),  # OpenBLAS reads the name in any case
        ("Nehalem", ("AVX2", "AVX", "SSE4.2"), "Nehalem kernel (SSE4.2) on a CPU with AVX2"),
        ("Haswell", ("AVX2", "FMA", "AVX"), None),  # the CPU's best anyway: nothing lost
        ("SkylakeX", ("AVX-512", "AVX2"), None),
        ("Zen", ("AVX2",), None),
        ("NoSuchCore", ("AVX-512",), None),  # a kernel this does not know: no guess
        (None, ("AVX-512",), None),
        ("Haswell", (), None),  # a CPU that does not say what it has
    ],
)
def test_a_forced_kernel_older_than_the_cpu_is_warned_about(forced, extensions, warned):
    forced_by = {} if forced is None else {"OPENBLAS_CORETYPE": forced, "OPENBLAS_L2_SIZE": "1048576"}
    said = blas.override(forced, forced_by, extensions)
    if warned is None:
        assert said is None
    else:
        assert warned in said and f"OPENBLAS_CORETYPE={forced}" in said and "unset it" in said


def test_the_info_line_shows_kernel_extensions_and_what_forces_them():
    line = cli._blas_line(
        {"name": "scipy-openblas", "version": "0.3.31", "library": "openblas", "threading_layer": "pthreads", "threads": 2,
         "kernel": "Haswell", "extensions": ["AVX-512", "AVX2"], "forced_by": {"OPENBLAS_CORETYPE": "Haswell"}}
    )
    assert line == (
        "BLAS: scipy-openblas 0.3.31 (openblas, pthreads, 2 threads, kernel Haswell); CPU: AVX-512, AVX2; "
        "set: OPENBLAS_CORETYPE=Haswell"
    )


def test_xpbp_info_reports_the_kernel_in_json_and_in_words():
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)["blas"]
    assert found["kernel"] == blas.info()["kernel"] and "override" in found
    r = run("info")
    assert f"kernel {found['kernel'] or 'unknown'}" in r.stdout


def test_the_native_environment_lacks_only_the_forcing_variables():
    given = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "PATH": "/bin", "OMP_NUM_THREADS": "2"}
    assert cli.native_environment(given) == {"PATH": "/bin", "OMP_NUM_THREADS": "2"}


def test_bench_native_kernel_measures_again_without_the_variables(monkeypatch, tmp_path, capsys):
    """With a forcing variable set, bench --native-kernel runs the same bench in a child
    whose environment lacks it, and reports both; without one, it says so and measures once."""
    import subprocess
    import types

    from xpbp import bench

    rows = [{"net": [784, 10], "batch": 10, "dtype": "float32", "device": "cpu", "impl": impl, "median": rate,
             "min": rate, "max": rate, "samples": [rate]} for impl, rate in (("xpbp fit", 1000.0), ("gemm", 2000.0))]
    monkeypatch.setattr(bench, "run", lambda cells, **k: rows)
    real = bench.machine
    forced = {"OPENBLAS_CORETYPE": "Haswell"}
    monkeypatch.setattr(bench, "machine", lambda: {**real(), "blas": {**blas.info(), "forced_by": forced}})
    children = []

    def child(argv, env, **kwargs):
        children.append((argv, env))
        native = {"machine": {**real(), "blas": {**blas.info(), "kernel": "SkylakeX", "forced_by": {}}}, "cells": [{"x": 1}]}
        return types.SimpleNamespace(returncode=0, stdout=json.dumps(native), stderr="")

    monkeypatch.setattr(subprocess, "run", child)
    argv = ["bench", "--sizes", "784,10", "--batch-sizes", "10", "--native-kernel", "--plot", str(tmp_path / "p.png"), "--json"]
    monkeypatch.setattr(bench, "plot", lambda *a, **k: None)
    assert cli.main(argv) == 0
    (command, env), = children
    assert command[1:] == ["-m", "xpbp", "bench", "--sizes", "784,10", "--batch-sizes", "10", "--json"]  # no flag, no plot
    assert env == cli.native_environment(os.environ)
    reported = json.loads(capsys.readouterr().out)
    assert reported["native"]["machine"]["blas"]["kernel"] == "SkylakeX" and reported["native"]["cells"] == [{"x": 1}]
    forced.clear()  # nothing forced: no child
    assert cli.main(["bench", "--sizes", "784,10", "--batch-sizes", "10", "--native-kernel", "--json"]) == 0
    assert len(children) == 1 and json.loads(capsys.readouterr().out)["native"] is None
