"""One rank of a data-parallel test run, started by tests/test_distributed.py under
``mpiexec -n P``.

``python mpi_worker.py SPEC`` where SPEC is JSON: ``net`` and ``fit`` (the arguments of
``Network`` and ``fit``, with per-rank overrides in ``ranks``), ``data`` (``n``, ``seed``,
``validation``), ``out`` (a directory), and optionally ``stop_after`` (raise once the
checkpoint of that epoch is written), ``crash_rank`` (that rank raises an exception
nothing catches after its first ``fit``, while the others call ``fit`` again) and
``strict`` (train on the strict devices, their gradients reduced by a stand-in for
NCCL that checks each buffer it is handed is a device array of the current device).

Each rank writes ``rank<r>.npz`` (its parameters and history) or ``rank<r>.err`` (the
type and message of the error ``fit`` raised).
"""

import json
import logging
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

import xpbp
from xpbp import backend, checkpoints, distributed

logging.basicConfig(level=logging.INFO, format="%(message)s")  # as the CLI does: each epoch's line on stderr
spec = json.loads(sys.argv[1])
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
out = Path(spec["out"])

if spec.get("strict"):
    sys.path.insert(0, str(Path(__file__).parent))
    import strict

    backend._BACKENDS["strict"] = strict.StrictBackend()

    class StrictNccl:
        """NCCL on the strict devices: refuses any buffer that is not a device array of the
        current device (the GPU's memory), then sums the ranks' buffers in place."""

        handed = []

        def __init__(self, comm, device):
            self.comm = comm

        def _check(self, buffer):
            if not isinstance(buffer, strict.StrictArray) or buffer._device != strict.CURRENT[0]:
                raise TypeError(f"NCCL was handed {buffer!r} while strict:{strict.CURRENT[0]} was current")
            StrictNccl.handed.append(buffer.size)

        def allreduce(self, buffer):
            self._check(buffer)
            self.comm.Allreduce(MPI.IN_PLACE, buffer._a, op=MPI.SUM)

        def broadcast(self, buffer):
            self._check(buffer)
            self.comm.Bcast(buffer._a, root=0)

    distributed.REDUCERS["strict"] = StrictNccl

if "stop_after" in spec:
    original = checkpoints.Checkpoints.after

    def after(self, trainer, epoch):
        original(self, trainer, epoch)
        if epoch == spec["stop_after"]:
            raise KeyboardInterrupt("stopped after the checkpoint, as a killed job would")

    checkpoints.Checkpoints.after = after


def data(n, seed, features, classes):
    rng = np.random.default_rng(seed)
    y = rng.integers(classes, size=n)
    return (rng.standard_normal((n, features)) + y[:, None] * 0.5).astype(np.float32), y


net_args = {**spec["net"], **spec.get("ranks", {}).get(str(rank), {}).get("net", {})}
fit_args = {**spec["fit"], **spec.get("ranks", {}).get(str(rank), {}).get("fit", {})}
sizes = net_args["sizes"]
data_args = {**spec["data"], **spec.get("ranks", {}).get(str(rank), {}).get("data", {})}
X, y = data(data_args["n"], data_args["seed"], sizes[0], sizes[-1])
if spec["data"].get("validation"):
    fit_args["validation_data"] = data(spec["data"]["validation"], spec["data"]["seed"] + 1, sizes[0], sizes[-1])
device = distributed.local_device(comm, "strict") if spec.get("strict") else "cpu"
net = xpbp.Network(**net_args, device=device)
fit_comm = MPI.COMM_SELF if spec.get("comm") == "self" else comm  # a one-rank communicator inside the launcher's world
try:
    history = net.fit(X, y, progress=False, comm=fit_comm, **fit_args)
except (ValueError, TypeError, RuntimeError, ArithmeticError, KeyboardInterrupt) as e:
    (out / f"rank{rank}.err").write_text(json.dumps([type(e).__name__, str(e)]))
    sys.exit(0)
if spec.get("crash_rank") == rank:
    raise RuntimeError(f"rank {rank} fails on its own")
if "crash_rank" in spec:
    net.fit(X, y, progress=False, comm=comm, **fit_args)  # waits for the rank that failed
params = [backend.to_numpy(p) for p in net.weights + net.biases]
extra = {"handed": np.array(StrictNccl.handed)} if spec.get("strict") else {}
np.savez(out / f"rank{rank}.npz", *params, history=json.dumps(vars(history)), seed=net.seed, device=net.device, **extra)
