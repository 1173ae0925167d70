"""Data-parallel training under MPI: real ``mpiexec -n P`` runs of tests/mpi_worker.py
(P = 1, 2, 3), each inside a generous subprocess timeout so that a hang fails the test
instead of stalling CI, compared with the same training in one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpbp
from xpbp import distributed

pytest.importorskip("mpi4py")
MPIEXEC = Path(sys.executable).parent / "mpiexec"
pytestmark = pytest.mark.skipif(not MPIEXEC.exists(), reason="needs mpiexec beside the interpreter (pip install mpich)")
WORKER = Path(__file__).parent / "mpi_worker.py"
TIMEOUT = 900  # a few seconds on an idle machine


def mpirun(ranks, spec, out, *, timeout=TIMEOUT):
    out.mkdir(exist_ok=True)
    for f in out.iterdir():
        f.unlink()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(xpbp.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([str(MPIEXEC), "-n", str(ranks), sys.executable, str(WORKER), json.dumps({**spec, "out": str(out)})],
                       capture_output=True, text=True, timeout=timeout, env=env)
    return r


def results(out, ranks):
    """Each rank's parameters and history, or its error."""
    found = []
    for r in range(ranks):
        if (out / f"rank{r}.err").exists():
            found.append(tuple(json.loads((out / f"rank{r}.err").read_text())))
        else:
            with np.load(out / f"rank{r}.npz") as f:
                found.append({"params": [f[f"arr_{i}"] for i in range(len(f.files) - 3 - ("handed" in f.files))],
                              "history": json.loads(str(f["history"])), "seed": int(f["seed"]), "device": str(f["device"]),
                              "handed": f["handed"] if "handed" in f.files else None})
    return found


def alone(spec):
    """The same training in this process, without a communicator."""
    sizes = spec["net"]["sizes"]

    def data(n, seed):
        rng = np.random.default_rng(seed)
        y = rng.integers(sizes[-1], size=n)
        return (rng.standard_normal((n, sizes[0])) + y[:, None] * 0.5).astype(np.float32), y

    fit = dict(spec["fit"])
    if spec["data"].get("validation"):
        fit["validation_data"] = data(spec["data"]["validation"], spec["data"]["seed"] + 1)
    net = xpbp.Network(**spec["net"], device="cpu")
    history = net.fit(*data(spec["data"]["n"], spec["data"]["seed"]), progress=False, **fit)
    return [xpbp.to_numpy(p) for p in net.weights + net.biases], vars(history)


FULL = {"net": {"sizes": [6, 7, 5, 4], "output_activation": "softmax", "cost": "log_likelihood", "dtype": "float64", "seed": 3},
        "fit": {"epochs": 4, "batch_size": 9, "eta": 0.2, "lmbda": 0.5, "momentum": 0.6, "eta_decay": 0.3},
        "data": {"n": 50, "seed": 1, "validation": 13}}


def assert_replicas_identical(found):
    for other in found[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(found[0]["params"], other["params"]))
        assert other["history"]["train_cost"] == found[0]["history"]["train_cost"]
        assert other["history"]["val_accuracy"] == found[0]["history"]["val_accuracy"]
        assert other["seed"] == found[0]["seed"]


def test_one_rank_is_bit_identical_to_no_communicator(tmp_path):
    for dtype in ("float64", "float32"):
        spec = {**FULL, "net": {**FULL["net"], "dtype": dtype}}
        r = mpirun(1, spec, tmp_path / dtype)
        assert r.returncode == 0, r.stderr
        (found,) = results(tmp_path / dtype, 1)
        params, history = alone(spec)
        assert all(np.array_equal(a, b) for a, b in zip(found["params"], params))
        assert {k: v for k, v in found["history"].items() if k != "seconds"} == {k: v for k, v in history.items() if k != "seconds"}


@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_train_the_model_one_process_trains(tmp_path, ranks):
    """SGD with momentum, L2, a schedule, validation and softmax/log-likelihood: float64
    within 1e-12 of one process, the replicas bit-identical, one log line per epoch."""
    r = mpirun(ranks, FULL, tmp_path)
    assert r.returncode == 0, r.stderr
    found = results(tmp_path, ranks)
    assert_replicas_identical(found)
    params, history = alone(FULL)
    for got, want in zip(found[0]["params"], params):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    for key in ("train_cost", "val_cost", "val_accuracy"):
        np.testing.assert_allclose(found[0]["history"][key], history[key], rtol=1e-12)
    lines = [line for line in r.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == [f"epoch {e}/4" for e in range(1, 5)]  # rank 0 alone speaks


PARTS = {"net": {"sizes": [6, 9, 7, 4], "activation": "relu", "output_activation": "softmax", "cost": "log_likelihood",
                 "dtype": "float64", "seed": 3},
         "fit": {"epochs": 8, "batch_size": 9, "eta": 0.01, "optimizer": "adam", "dropout": 0.3, "lmbda": 0.5,
                 "regularization": "l1", "validation_fraction": 0.2, "early_stopping": 2},
         "data": {"n": 60, "seed": 1}}


@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_train_with_adam_dropout_and_early_stopping_as_one_process(tmp_path, ranks):
    """The masks are keyed by each example's row, the split by the seed, so P ranks drop the
    neurons one process drops and stop where it stops: within 1e-12 in float64."""
    r = mpirun(ranks, PARTS, tmp_path)
    assert r.returncode == 0, r.stderr
    found = results(tmp_path, ranks)
    assert_replicas_identical(found)
    params, history = alone(PARTS)
    assert found[0]["history"]["best_epoch"] == history["best_epoch"]
    assert found[0]["history"]["stopped_early"] == history["stopped_early"]
    for got, want in zip(found[0]["params"], params):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    for key in ("train_cost", "val_cost", "val_accuracy"):
        np.testing.assert_allclose(found[0]["history"][key], history[key], rtol=1e-12)


def test_small_batches_leave_ranks_empty_handed(tmp_path):
    """Mini-batches of 2 on 3 ranks (one rank has no example) and a last mini-batch of one;
    seed None on every rank still trains one network."""
    spec = {"net": {"sizes": [3, 4, 2], "dtype": "float64", "seed": 5}, "fit": {"epochs": 3, "batch_size": 2, "eta": 0.5},
            "data": {"n": 9, "seed": 2}}
    r = mpirun(3, spec, tmp_path)
    assert r.returncode == 0, r.stderr
    found = results(tmp_path, 3)
    assert_replicas_identical(found)
    params, _ = alone(spec)
    for got, want in zip(found[0]["params"], params):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    r = mpirun(3, {**spec, "net": {**spec["net"], "seed": None}}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert_replicas_identical(results(tmp_path, 3))


def test_resume_on_the_same_and_on_another_number_of_ranks(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    spec = {**FULL, "fit": {**FULL["fit"], "checkpoint": str(ckpt)}}
    assert mpirun(2, spec, tmp_path / "whole").returncode == 0
    whole = results(tmp_path / "whole", 2)[0]
    ckpt.unlink()
    stopped = mpirun(2, {**spec, "stop_after": 2}, tmp_path / "stopped")
    assert [e[0] for e in results(tmp_path / "stopped", 2)] == ["KeyboardInterrupt"] * 2, stopped.stderr
    resumed = {**spec, "fit": {**spec["fit"], "resume": True}}
    r = mpirun(2, resumed, tmp_path / "same")
    assert r.returncode == 0, r.stderr
    same = results(tmp_path / "same", 2)
    assert all(np.array_equal(a, b) for a, b in zip(same[0]["params"], whole["params"]))
    assert same[0]["history"]["train_cost"] == whole["history"]["train_cost"]
    ckpt.unlink()
    mpirun(2, {**spec, "stop_after": 2}, tmp_path / "stopped")
    r = mpirun(3, resumed, tmp_path / "other")
    assert r.returncode == 0, r.stderr
    other = results(tmp_path / "other", 3)
    assert_replicas_identical(other)
    for got, want in zip(other[0]["params"], whole["params"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_what_one_rank_refuses_every_rank_refuses(tmp_path):
    spec = {"net": {"sizes": [3, 4, 2], "seed": 1}, "fit": {"epochs": 2, "batch_size": 4, "eta": 0.5}, "data": {"n": 20, "seed": 2}}
    cases = {"epochs": ({"2": {"fit": {"epochs": 0}}}, "ValueError", "rank 2: epochs must be a positive integer, got 0"),
             "eta": ({"1": {"fit": {"eta": 0.4}}}, "ValueError", "the ranks differ in the settings of fit: rank 0 has Run("),
             "sizes": ({"1": {"net": {"sizes": [3, 5, 2]}}}, "ValueError", "the ranks differ in the network"),
             "data": ({"2": {"data": {"seed": 7}}}, "ValueError", "the ranks differ in the data")}
    for what, (ranks, kind, message) in cases.items():
        r = mpirun(3, {**spec, "ranks": ranks}, tmp_path / what)
        assert r.returncode == 0, r.stderr
        found = results(tmp_path / what, 3)
        assert all(f[0] == kind and message in f[1] for f in found), (what, found)
        assert len({f[1] for f in found}) == 1, (what, found)  # the same words on every rank


def test_divergence_is_found_at_the_same_mini_batch_on_every_rank(tmp_path):
    spec = {"net": {"sizes": [3, 4, 2], "activation": "identity", "seed": 1}, "fit": {"epochs": 40, "batch_size": 20, "eta": 3.0},
            "data": {"n": 40, "seed": 2}}
    r = mpirun(2, spec, tmp_path)
    assert r.returncode == 0, r.stderr
    found = results(tmp_path, 2)
    assert found[0][0] == "DivergenceError" and found[0] == found[1]
    assert "mini-batch" in found[0][1] and "smaller learning rate" in found[0][1]


def test_an_uncaught_exception_on_one_rank_ends_the_job(tmp_path):
    """Rank 1 fails outside fit while rank 0 calls fit again: without the abort, rank 0
    would wait in its first collective for ever (and the timeout would fail this test)."""
    spec = {"net": {"sizes": [3, 4, 2], "seed": 1}, "fit": {"epochs": 1, "batch_size": 4, "eta": 0.5},
            "data": {"n": 20, "seed": 2}, "crash_rank": 1}
    r = mpirun(2, spec, tmp_path, timeout=300)
    assert r.returncode != 0 and "rank 1 fails on its own" in r.stderr
    assert not list(tmp_path.glob("rank*.npz"))


def test_nccl_path_keeps_gradients_on_the_device(tmp_path):
    """On the strict devices (two stand-in GPUs, one per rank) the gradient is reduced by a
    stand-in for NCCL that refuses anything but a device array of the current device;
    the result equals the CPU's MPI run bit for bit."""
    spec = {**FULL, "fit": {**FULL["fit"], "epochs": 2}}
    r = mpirun(2, {**spec, "strict": True}, tmp_path / "strict")
    assert r.returncode == 0, r.stderr
    on_device = results(tmp_path / "strict", 2)
    assert [f["device"] for f in on_device] == ["strict:0", "strict:1"]
    steps = 2 * -(-50 // 9)
    size = sum(w.size for w in on_device[0]["params"])
    assert list(on_device[0]["handed"]) == [size] * (1 + steps)  # θ broadcast once, then one gradient per step
    assert mpirun(2, spec, tmp_path / "cpu").returncode == 0
    on_cpu = results(tmp_path / "cpu", 2)
    assert all(np.array_equal(a, b) for a, b in zip(on_device[0]["params"], on_cpu[0]["params"]))


def test_the_command_line_trains_on_several_ranks(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(xpbp.__file__).parents[1])}
    xpbp_cmd = [sys.executable, "-m", "xpbp", "train", "--epochs", "2", "--seed", "1", "--device", "cpu"]
    r = subprocess.run([str(MPIEXEC), "-n", "2", *xpbp_cmd, "--distributed", "mpi", "--json", "--save", str(tmp_path / "m.npz")],
                       capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)  # exactly one object, from rank 0
    assert result["ranks"] == 2 and result["test_accuracy"] > 0.8
    assert xpbp.load(tmp_path / "m.npz", device="cpu").sizes == [784, 30, 10]
    assert sum(line.startswith("epoch ") for line in r.stderr.splitlines()) == 2
    r = subprocess.run([str(MPIEXEC), "-n", "2", *xpbp_cmd], capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert r.returncode == 1 and "one of 2 processes" in r.stderr and "--distributed mpi" in r.stderr


def test_a_launcher_and_an_mpi_that_do_not_know_each_other_are_refused(monkeypatch):
    class Alone:
        def Get_size(self):
            return 1

    monkeypatch.setenv("PMI_SIZE", "3")
    with pytest.raises(RuntimeError, match="one of 3 that the launcher started, but MPI sees a world of 1 rank"):
        distributed._check_launch(Alone())
    monkeypatch.delenv("PMI_SIZE")
    distributed._check_launch(Alone())


def test_a_one_rank_communicator_under_mpiexec_trains_alone(tmp_path):
    """fit(comm=MPI.COMM_SELF) in each of 2 launched processes: two separate one-rank runs,
    each what one process trains, not a refusal blaming mismatched MPIs."""
    r = mpirun(2, {**FULL, "comm": "self"}, tmp_path)
    assert r.returncode == 0, r.stderr
    want, history = alone(FULL)
    for found in results(tmp_path, 2):
        assert isinstance(found, dict), found
        assert all(np.array_equal(a, b) for a, b in zip(found["params"], want))
        assert {k: v for k, v in found["history"].items() if k != "seconds"} == {k: v for k, v in history.items() if k != "seconds"}


def _rank_pid(marker, rank):
    """The pid of the process of `rank` whose command line holds `marker` (Linux /proc)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and b"-m\0xpbp" in cmdline and f"PMI_RANK={rank}".encode() in env:
            return int(pid)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks' processes through /proc")
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_an_interrupt_of_one_rank_ends_the_whole_command_line_job(tmp_path, signal_name):
    """Before, the interrupted rank printed its message and waited in MPI_Finalize while the
    other waited in Allreduce: the job never ended. Now the rank ends the job (MPI_Abort)."""
    import signal
    import time

    marker = str(400000 + os.getpid() % 100000)  # a seed no other test uses, to find these processes by
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "xpbp", "train", "--distributed", "mpi", "--epochs", "100000",
           "--seed", marker, "--device", "cpu", "--json"]
    env = {**os.environ, "PYTHONPATH": str(Path(xpbp.__file__).parents[1])}
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        pid = None
        for _ in range(3000):
            pid = _rank_pid(marker, 1)
            if pid or job.poll() is not None:
                break
            time.sleep(0.1)
        assert pid, job.communicate(timeout=TIMEOUT)
        time.sleep(3)  # well into training, or still loading: either way the job must end
        os.kill(pid, getattr(signal, signal_name))
        out, err = job.communicate(timeout=TIMEOUT)  # a hang fails here
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode != 0, err
    assert out.count("{") <= 1  # never one JSON object per rank


@pytest.mark.parametrize(
    "one, other",
    [({"checkpoint": "c.npz"}, {"checkpoint": None}),  # checkpoint=path if rank == 0 else None, as DDP users write
     ({"checkpoint": "c.npz", "checkpoint_every": 1}, {"checkpoint": "c.npz", "checkpoint_every": 2})],
)
def test_checkpoint_settings_that_differ_between_ranks_are_refused_not_hung(tmp_path, one, other):
    fix = {k: (str(tmp_path / v) if k == "checkpoint" and v else v) for k, v in one.items()}
    fix_other = {k: (str(tmp_path / v) if k == "checkpoint" and v else v) for k, v in other.items()}
    spec = {**FULL, "fit": {**FULL["fit"], **fix}, "ranks": {"1": {"fit": fix_other}}}
    r = mpirun(2, spec, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    for kind, message in results(tmp_path / "out", 2):
        assert kind == "ValueError" and "the ranks differ in the checkpoint settings" in message, message
    assert not (tmp_path / "c.npz").exists()


_DROPIN = """
import sys
import numpy as np
from mpi4py import MPI
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from xpbp import distributed
from xpbp.sklearn import MLPClassifier
rows = []
share = distributed.Group.slice
distributed.Group.slice = lambda self, m: rows.append(share(self, m)) or rows[-1]  # this rank's part of each mini-batch
X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
early = sys.argv[2] == "early"
clf = MLPClassifier((16,), max_iter=4, random_state=0, batch_size=64, early_stopping=early, comm=MPI.COMM_WORLD).fit(X, y)
np.savez(f"{sys.argv[1]}/rank{MPI.COMM_WORLD.Get_rank()}.npz", *clf.coefs_, *clf.intercepts_, loss=clf.loss_curve_,
         rows=sum(hi - lo for lo, hi in rows))
"""


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("early", [False, True])
def test_the_scikit_learn_drop_in_trains_data_parallel_as_one_process_would(tmp_path, early):
    """MLPClassifier(comm=MPI.COMM_WORLD) on 2 ranks: each computes its half of every
    mini-batch's gradient, and both end with the network one process trains (to the
    rounding of the summed halves), with the same loss curve; early stopping's held-out
    scores are the same on both."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    from xpbp.sklearn import MLPClassifier

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(xpbp.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-c", _DROPIN, str(tmp_path), "early" if early else "all"],
                       capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert r.returncode == 0, r.stderr
    X, y = load_digits(return_X_y=True)
    alone = MLPClassifier((16,), max_iter=4, random_state=0, batch_size=64, early_stopping=early).fit(
        StandardScaler().fit_transform(X), y)
    trained = len(X) - (round(0.1 * len(X)) if early else 0)  # the rows an epoch steps over
    shares = []
    for rank in (0, 1):
        with np.load(tmp_path / f"rank{rank}.npz") as f:
            params = [f[f"arr_{i}"] for i in range(4)]
            np.testing.assert_allclose(f["loss"], alone.loss_curve_, rtol=1e-10)
            shares.append(int(f["rows"]))
        for a, b in zip(params, [*alone.coefs_, *alone.intercepts_]):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # each mini-batch split in halves: 4 epochs, and once when the trainer sets out which rows are whose
    assert sum(shares) == 5 * trained and abs(shares[0] - shares[1]) <= 5 * (trained // 64 + 1)
    with pytest.raises(ValueError, match="comm .* needs a stochastic solver"):
        MLPClassifier(solver="lbfgs", comm=object()).fit(X[:20], y[:20])
