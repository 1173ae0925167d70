"""Data-parallel training across processes: MPI (mpi4py) on CPUs and between nodes,
NCCL on GPUs.

`Network.fit(X, y, ..., comm=MPI.COMM_WORLD)` trains one network on P processes
("ranks"), each holding the whole data set and calling `fit` with the same arguments.
`batch_size` is the *global* mini-batch, so P ranks train the same model one process
would (PyTorch's DDP and Horovod take a per-process batch instead):

- every rank draws the same permutation each epoch and takes a contiguous slice of
  each global mini-batch (an empty one when the batch has fewer examples than ranks);
- each runs BP1–BP4 on its slice, scaled by η/m of the whole mini-batch, into its flat
  gradient buffer, and one all-reduce (a sum) of that buffer per step gives every rank
  η∇C of the whole mini-batch; the L2 term and the update follow on every rank alike,
  so the replicas stay bit-identical;
- rank 0's parameters, seed and epoch count are broadcast when `fit` starts; each
  epoch's statistics (training cost, validation cost and accuracy, over validation
  rows split between the ranks) are gathered in one small collective, so `History`
  is the same everywhere.

On the CPU the all-reduce is MPI's, on host arrays. On CUDA it is NCCL's, on the
device, bootstrapped over the MPI communicator, with no host staging or
synchronisation per step; each rank must have a GPU of its own (`local_device`).

Every check that can fail on one rank is agreed by all before any raises
(`Group.agree`), so all raise the same error; and an exception that nothing
catches ends the whole job (MPI_Abort) instead of leaving the other ranks waiting.

This is the only module of xpbp that imports mpi4py or CuPy's NCCL bindings. Importing
`mpi4py.MPI` initialises MPI, so it is imported only when a run asks for it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from . import backend

try:  # CuPy's NCCL bindings are optional, like CuPy itself
    from cupy.cuda import nccl
except Exception:
    nccl = None

__all__ = ["Group", "agree", "agreeing", "end_job", "launched_ranks", "local_device", "world"]

# Variables a launcher sets in each process it starts: MPICH's Hydra (and Slurm's PMI)
# and Open MPI's.
_LAUNCHER_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
_INSTALL_HINT = (
    "pip install mpi4py and an MPI: pip install mpich, or the MPI of your site "
    "(in an xpbp checkout: pip install -e '.[mpi]' mpich)"
)


def _mpi() -> ModuleType:
    """`mpi4py.MPI`, imported (and MPI initialised) on first use."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(f"distributed training needs mpi4py ({e}); {_INSTALL_HINT}") from None
    return MPI


def launched_ranks() -> int:
    """How many processes the launcher (mpiexec, srun) started alongside this one: 1
    when it was not started by one. Read from the environment, without MPI."""
    sizes = [os.environ[v] for v in _LAUNCHER_SIZE if os.environ.get(v, "").isdigit()]
    return max((int(s) for s in sizes), default=1)


def world() -> Any:
    """`MPI.COMM_WORLD`, checked against the launcher (see `_check_launch`)."""
    comm = _mpi().COMM_WORLD
    _check_launch(comm)
    return comm


def _check_launch(comm: Any) -> None:
    """Refuse a launcher and an MPI that do not know each other: MPICH's mpiexec with an
    mpi4py built on Open MPI starts P processes that each see a world of one rank, and
    would train P separate networks without a word."""
    launched = launched_ranks()
    if comm.Get_size() == 1 and launched > 1:
        raise RuntimeError(
            f"this process is one of {launched} that the launcher started, but MPI sees a world of 1 rank: "
            "mpiexec and the MPI that mpi4py was built with differ; run the mpiexec of that MPI "
            f"(with pip's mpich: {os.path.join(os.path.dirname(sys.executable), 'mpiexec')})"
        )


def local_device(comm: Any, device: str) -> str:
    """The device of this rank for `device`: a name with an index, or `"cpu"`, is
    itself; `"cuda"` (and `"auto"`, where CUDA is usable) is the GPU of the rank's
    local rank, its index among the ranks on its node (`MPI.COMM_TYPE_SHARED`)."""
    if device == "auto":
        device = "cuda" if backend.cuda_available() else "cpu"
    if ":" in device or device == "cpu":
        return backend.canonical(device)
    node = comm.Split_type(_mpi().COMM_TYPE_SHARED)
    try:
        return backend.canonical(f"{device}:{node.Get_rank()}")
    finally:
        node.Free()


class _Mpi:
    """MPI's all-reduce and broadcast on host arrays."""

    def __init__(self, comm: Any, device: str) -> None:
        self.comm, self.MPI = comm, _mpi()

    def allreduce(self, buffer: Any) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)

    def broadcast(self, buffer: Any) -> None:
        self.comm.Bcast(buffer, root=0)


class _Nccl:
    """NCCL's all-reduce and broadcast on CUDA arrays, on the current stream, with a
    communicator bootstrapped over MPI (rank 0's unique id, broadcast)."""

    def __init__(self, comm: Any, device: str) -> None:
        if nccl is None:
            raise RuntimeError("training on several GPUs needs CuPy with NCCL (cupy.cuda.nccl could not be imported)")
        uid = comm.bcast(nccl.get_unique_id() if comm.Get_rank() == 0 else None, root=0)
        self.comm = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
        self.types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def allreduce(self, buffer: Any) -> None:
        ptr = buffer.data.ptr
        self.comm.allReduce(ptr, ptr, buffer.size, self.types[buffer.dtype], nccl.NCCL_SUM, backend.stream())

    def broadcast(self, buffer: Any) -> None:
        self.comm.bcast(buffer.data.ptr, buffer.size, self.types[buffer.dtype], 0, backend.stream())


# Reducers of device buffers, by backend. The test suite registers one for the strict device.
REDUCERS: dict[str, Callable[[Any, str], Any]] = {"cpu": _Mpi, "cuda": _Nccl}


class Group:
    """The ranks of a data-parallel `fit` on an mpi4py communicator: this process's
    `rank`, their number `size`, and the collectives training needs. Made with the
    network's device current, by every rank alike."""

    def __init__(self, comm: Any, device: str) -> None:
        if not all(hasattr(comm, name) for name in ("Get_rank", "Get_size", "allgather", "Allreduce")):
            raise TypeError(f"comm must be an mpi4py communicator such as MPI.COMM_WORLD, got {type(comm).__name__}")
        _check_launch(_mpi().COMM_WORLD)  # the launcher started the world; comm may be a part of it (COMM_SELF, a Split)
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        if self.size > 1:
            _abort_on_uncaught(comm)
        kind = device.partition(":")[0]
        if kind not in REDUCERS:
            raise RuntimeError(f"data-parallel training knows no collectives for device {device!r}")
        if kind != "cpu":
            self.distinct("the device", f"{device} on {socket.gethostname()}")
        self.reducer = REDUCERS[kind](comm, device)

    def agree(self, error: BaseException | None) -> None:
        """See `agree`."""
        agree(self.comm, error)

    def same(self, what: str, value: Any) -> None:
        """Refuse, on every rank, a `value` that is not the same on all ranks."""
        values = self.comm.allgather(value)
        for rank, other in enumerate(values):
            if other != values[0]:
                raise ValueError(
                    f"the ranks differ in {what}: rank 0 has {values[0]}, rank {rank} has {other}; "
                    "every rank must call fit with the same arguments and data"
                )

    def distinct(self, what: str, value: Any) -> None:
        """Refuse, on every rank, a `value` that two ranks share."""
        values = self.comm.allgather(value)
        for rank, other in enumerate(values):
            if values.index(other) != rank:
                raise ValueError(f"ranks {values.index(other)} and {rank} share {what} {other}: each needs one of its own")

    def allreduce(self, buffer: Any) -> None:
        """Sum `buffer` over the ranks, in place, where it lives."""
        self.reducer.allreduce(buffer)

    def broadcast(self, buffer: Any) -> None:
        """Rank 0's `buffer` on every rank, in place, where it lives."""
        self.reducer.broadcast(buffer)

    def share(self, value: Any) -> Any:
        """Rank 0's Python `value` (small), on every rank."""
        return self.comm.bcast(value, root=0)

    def gather(self, values: list[float]) -> list[list[float]]:
        """Every rank's `values`, in rank order, on every rank (one small collective)."""
        return self.comm.allgather(values)

    def slice(self, m: int) -> tuple[int, int]:
        """This rank's contiguous share `[lo, hi)` of `m` examples (empty when m < size)."""
        return self.rank * m // self.size, (self.rank + 1) * m // self.size


def agree(comm: Any, error: BaseException | None) -> None:
    """Raise on every rank of `comm` the error of the first rank that had one, naming
    that rank (the error's `agreed` is True); return on every rank when none had. A
    collective: every rank must call it."""
    errors = comm.allgather(None if error is None else (type(error), str(error)))
    for rank, found in enumerate(errors):
        if found is not None:
            kind, message = found
            try:
                agreed = kind(f"rank {rank}: {message}")
            except Exception:
                agreed = RuntimeError(f"rank {rank}: {message}")
            agreed.agreed = True
            raise agreed from error


@contextlib.contextmanager
def agreeing(comm: Any | None) -> Iterator[None]:
    """Run the block on every rank of `comm`, then `agree`: an error the block
    raises on any rank is raised on all. The block must make no collective call. Without
    a communicator (None) the block just runs."""
    if comm is None:
        yield
        return
    try:
        yield
    except Exception as e:
        agree(comm, e)
        raise
    agree(comm, None)


def end_job(code: int) -> None:
    """After an error on this rank alone, caught and reported by the caller (the CLI): end
    every rank of the MPI job (MPI_Abort), so that none waits for this one in a
    collective forever. Nothing happens when MPI is not running or its world is one rank."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized() or MPI.COMM_WORLD.Get_size() == 1:
        return
    print(f"xpbp: rank {MPI.COMM_WORLD.Get_rank()}: ending every rank of the job (MPI_Abort)", file=sys.stderr, flush=True)
    time.sleep(0.5)  # a moment for the launcher to pass on what this rank said, before the abort takes it down
    MPI.COMM_WORLD.Abort(code)


def _abort_on_uncaught(comm: Any) -> None:
    """Make an exception that nothing catches end every rank of the job (MPI_Abort), as
    `python -m mpi4py` does, instead of leaving the other ranks waiting in a collective."""
    if getattr(sys.excepthook, "xpbp_aborts", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        previous(kind, value, tb)
        print(
            f"xpbp: rank {comm.Get_rank()}: {kind.__name__}: {value}; ending every rank of the job (MPI_Abort)",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(0.5)  # a moment for the launcher to pass on what this rank said, before the abort takes it down
        comm.Abort(1)

    hook.xpbp_aborts = True  # type: ignore[attr-defined]
    sys.excepthook = hook
