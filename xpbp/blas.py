"""The BLAS that NumPy's matrix products run on: the library, its threads, and the
kernel it picked for this CPU, as threadpoolctl reports them.

OpenBLAS picks a kernel for the CPU it finds, unless the environment forces one:
`OPENBLAS_CORETYPE=Haswell` makes it run its AVX2 kernel even where the CPU has
AVX-512 (on a 2-core AVX-512 AMD EPYC, `fit` of `784-1024-1024-10` ran 1.9× faster
without it). `override` says so, in words, where a variable forces a kernel older
than the CPU supports; nothing here changes the environment.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

__all__ = ["FORCING", "cpu_extensions", "info", "override"]

# Environment variables that choose a BLAS kernel or its tuning instead of the library.
FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE")

# The vector extensions worth naming, newest first, as /proc/cpuinfo spells their flags.
_EXTENSIONS = (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("FMA", "fma"), ("AVX", "avx"), ("SSE4.2", "sse4_2"))

# What each OpenBLAS x86 kernel needs, by the newest extension it uses.
_KERNEL_NEEDS = {
    "sapphirerapids": "AVX-512",
    "cooperlake": "AVX-512",
    "skylakex": "AVX-512",
    "zen": "AVX2",
    "haswell": "AVX2",
    "sandybridge": "AVX",
    "nehalem": "SSE4.2",
}
_ORDER = [name for name, _ in _EXTENSIONS if name != "FMA"]  # newest first


@functools.cache
def cpu_extensions() -> tuple[str, ...]:
    """The CPU's vector extensions among AVX-512, AVX2, FMA, AVX and SSE4.2 (empty where
    the CPU does not say, as off Linux)."""
    try:
        found = re.search(r"^flags\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        return ()
    flags = set(found.group(1).split()) if found else set()
    return tuple(name for name, flag in _EXTENSIONS if flag in flags)


def info() -> dict[str, Any]:
    """The BLAS NumPy was built with (`name`, `version`) and, as loaded now, its
    `library` (openblas, mkl, blis), `threading_layer`, `threads` and `kernel`
    (None where unknown); the CPU's vector `extensions`; the kernel-forcing variables
    set in the environment (`forced_by`); and `override`, a sentence when one of them
    costs speed on this CPU (else None)."""
    built = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    loaded: dict[str, Any] = next((lib for lib in threadpool_info() if lib.get("user_api") == "blas"), {})
    result: dict[str, Any] = {
        "name": built.get("name"),
        "version": built.get("version"),
        "library": loaded.get("internal_api"),
        "threading_layer": loaded.get("threading_layer"),
        "threads": loaded.get("num_threads"),
        "kernel": loaded.get("architecture"),
        "extensions": list(cpu_extensions()),
        "forced_by": {k: os.environ[k] for k in FORCING if k in os.environ},
    }
    result["override"] = override(result["kernel"], result["forced_by"], cpu_extensions())
    return result


def override(kernel: str | None, forced_by: dict[str, str], extensions: tuple[str, ...]) -> str | None:
    """A warning when `OPENBLAS_CORETYPE` forces a kernel whose newest extension is older
    than the CPU's, naming the variable, what it costs and the remedy; else None."""
    forced = forced_by.get("OPENBLAS_CORETYPE")
    needs = _KERNEL_NEEDS.get((forced or "").lower())
    best = next((name for name in _ORDER if name in extensions), None)
    if forced is None or needs is None or best is None or _ORDER.index(best) >= _ORDER.index(needs):
        return None
    return (
        f"OPENBLAS_CORETYPE={forced} forces OpenBLAS's {kernel or forced} kernel ({needs}) on a CPU with {best}: "
        "matrix products, and so fit, may run well below this CPU's speed (1.9x slower for a 784-1024-1024-10 fit "
        "measured on an AVX-512 AMD EPYC); unset it (env -u OPENBLAS_CORETYPE) for the kernel OpenBLAS picks itself"
    )
