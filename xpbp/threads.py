"""How many BLAS threads the CPU's matrix products get while a network trains.

NumPy's BLAS runs every matrix product on as many threads as the machine has cores.
For small networks and batches that gains little, and on a busy machine the threads
spin waiting for cores: on 2 cores, a `784-100-10` batch-128 `fit` ran at 0.10 of its
solo speed beside two other trainings. So a training step whose matrix products are
small runs on one thread, as does each rank of a data-parallel run (ranks × threads
must not exceed the cores); `threads=` or `$XPBP_NUM_THREADS` say otherwise. The
limit is set through threadpoolctl (the library scikit-learn uses) and holds only
while `fit` runs.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

from .validation import positive_int

__all__ = ["THREADED_STEP_FLOPS", "limit", "step_flops", "threads_for"]

# Below this many floating-point operations per training step, a second BLAS thread
# gained at most ~15% on an idle 2-core machine, and cost a factor of five on one
# where two other trainings ran (the threads spin waiting for a core).
THREADED_STEP_FLOPS = 50e6


def threads_for(sizes: list[int], batch_size: int, ranks: int = 1) -> int | None:
    """The BLAS threads for a CPU training step: `$XPBP_NUM_THREADS` when set; else one
    for each of several ranks, and for a step whose matrix products are too small for
    more to pay; else None (all)."""
    setting = os.environ.get("XPBP_NUM_THREADS")
    if setting:
        return positive_int(int(setting) if setting.isdigit() else setting, "XPBP_NUM_THREADS")
    return 1 if ranks > 1 or step_flops(sizes, batch_size) < THREADED_STEP_FLOPS else None


def step_flops(sizes: Sequence[int], batch_size: int) -> int:
    """Floating-point operations of one training step's matrix products: forward w·a,
    BP4's δ·aᵀ and BP2's wᵀδ (not for the first layer), each 2·m·n_in·n_out."""
    pairs = zip(sizes[:-1], sizes[1:])
    return sum(2 * batch_size * n_in * n_out * (3 if l else 2) for l, (n_in, n_out) in enumerate(pairs))


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS libraries once


def limit(device: str, threads: int | None) -> AbstractContextManager[Any]:
    """A context in which the CPU's BLAS uses at most `threads` threads (None: no limit;
    nothing to do off the CPU)."""
    if device != "cpu" or threads is None:
        return contextlib.nullcontext()
    return _controller().limit(limits=threads, user_api="blas")
