"""What `xpbp info` and `xpbp bench` say about the BLAS: the kernel that runs, and a
warning where the environment forces one older than the CPU's."""

import json

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
