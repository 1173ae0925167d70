"""Tests that kill the survivors of a mutation audit: plausible bugs that no other test
caught, each checked here against the behaviour the bug would change."""

import gzip
import hashlib
import json
import types
from importlib import resources

import numpy as np
import pytest
from test_cli import run

import xpbp
from xpbp import backend, costs, datasets, distributed, draws, runs, threads, to_numpy
from xpbp.validation import fingerprint


def blobs(n=60, seed=0, dim=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    return (rng.standard_normal((n, dim)) + y[:, None]).astype(np.float32), y


def host(net):
    return [to_numpy(p).copy() for p in net.weights + net.biases]


# ---------------------------------------------------------------------- 1. mini-batches gathered in blocks


def test_a_shuffled_mini_batch_larger_than_a_gather_block_trains_as_the_per_step_reference(monkeypatch):
    """Mini-batches of 40 examples of 1,000 float64 features (320,000 bytes, more than the
    256 KiB a block gathers): each block still holds whole mini-batches, so the run is
    the one whose single block holds the whole epoch, and the one that takes each
    mini-batch of the epoch's order in turn (unshuffled fits of the reordered data)."""
    X, y = blobs(n=100, dim=1000)
    X = X.astype(np.float64)
    kwargs = dict(batch_size=40, eta=0.5, lmbda=0.3, progress=False)
    assert 40 * X.shape[1] * X.itemsize > backend.gather_bytes("cpu")
    default = xpbp.Network([1000, 5, 3], dtype="float64", device="cpu", seed=4)
    default.fit(X, y, epochs=2, **kwargs)
    reference = xpbp.Network([1000, 5, 3], dtype="float64", device="cpu", seed=4)
    for count in (0, 1):  # each epoch's order, from the seed and the epochs trained
        order = draws.order(4, count, len(X))
        reference.fit(X[order], y[order], epochs=1, shuffle=False, **kwargs)
    for a, b in zip(host(default), host(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    monkeypatch.setattr(backend._BACKENDS["cpu"], "gather_bytes", 1 << 30)  # one block: the whole epoch
    whole = xpbp.Network([1000, 5, 3], dtype="float64", device="cpu", seed=4)
    whole.fit(X, y, epochs=2, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(host(default), host(whole)))


# ---------------------------------------------------------------------- 2. the divergence message's η


def test_a_divergence_under_eta_decay_names_the_eta_of_its_epoch():
    """A linear unit whose steps grow its output ninefold at first: under eta_decay it
    diverges after the first epoch, and the message names that epoch's η, not the initial one."""
    X, y = np.full((8, 1), 3.0, np.float32), np.zeros((8, 1), np.float32)
    net = xpbp.Network([1, 1], output_activation="identity", cost="quadratic", task="regression", device="cpu", seed=0)
    eta, decay = 1.0, 0.1
    with pytest.raises(xpbp.DivergenceError) as caught:
        net.fit(X, y, epochs=40, batch_size=1, eta=eta, eta_decay=decay, shuffle=False, progress=False)
    e = caught.value.epoch
    assert e > 1
    want = eta / (1 + decay * (e - 1))
    assert f"(eta={want:g} in that epoch)" in str(caught.value)
    assert f"eta={eta:g} " not in str(caught.value)


# ---------------------------------------------------------------------- 3. BLAS threads of a data-parallel run


class _TwoRanks:
    """Rank 0 of a stand-in for a 2-rank communicator: what `fit` asks of one before it trains."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def allgather(self, value):
        return [value, value]


class _Group:
    """A stand-in for `xpbp.distributed.Group` on `_TwoRanks`, with no MPI behind it."""

    def __init__(self, comm, device):
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()

    def same(self, what, value):
        pass

    def broadcast(self, buffer):
        pass

    def share(self, value):
        return value

    def slice(self, m):
        return self.rank * m // self.size, (self.rank + 1) * m // self.size


def test_each_rank_of_a_data_parallel_run_trains_on_one_blas_thread(monkeypatch):
    """A step large enough for all the BLAS threads in one process gets one per rank of two."""
    monkeypatch.delenv("XPBP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "THREADED_STEP_FLOPS", 0)  # every step is large now
    monkeypatch.setattr(runs, "Group", _Group)
    X, y = blobs(n=20)
    alone = xpbp.Network([4, 5, 3], device="cpu", seed=1).trainer(X, y, epochs=1)
    assert alone.execution.threads is None and alone.execution.group is None
    ranked = xpbp.Network([4, 5, 3], device="cpu", seed=1).trainer(X, y, epochs=1, comm=_TwoRanks())
    assert ranked.execution.group.size == 2
    assert ranked.execution.threads == 1


# ---------------------------------------------------------------------- 4. resuming another network


CKPT_RUN = dict(epochs=3, batch_size=8, eta=0.3, progress=False)
NET = dict(activation="sigmoid", output_activation="sigmoid", cost="quadratic", init="scaled", dtype="float32")


@pytest.mark.parametrize(
    "field, other",
    [("activation", "tanh"), ("output_activation", "tanh"), ("cost", "cross_entropy"), ("init", "large"), ("dtype", "float64")],
)
def test_a_checkpoint_of_a_network_that_differs_only_in_one_setting_is_refused(tmp_path, field, other):
    X, y = blobs()
    ckpt = tmp_path / "run.ckpt"
    xpbp.Network([4, 6, 3], device="cpu", seed=3, **NET).fit(X, y, checkpoint=ckpt, **CKPT_RUN)
    net = xpbp.Network([4, 6, 3], device="cpu", seed=5, **{**NET, field: other})
    before = host(net)
    with pytest.raises(ValueError, match=f"checkpoint of another network \\({field} {NET[field]} there, {other} here\\)"):
        net.fit(X, y, checkpoint=ckpt, resume=True, **CKPT_RUN)
    assert all(np.array_equal(a, b) for a, b in zip(host(net), before))


# ---------------------------------------------------------------------- 5. the launcher's count of ranks


@pytest.mark.parametrize("variable", ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE"])
def test_two_launched_processes_that_each_see_a_world_of_one_rank_are_refused(monkeypatch, variable):
    class Alone:
        def Get_size(self):
            return 1

    for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(variable, "2")
    assert distributed.launched_ranks() == 2
    with pytest.raises(RuntimeError, match="one of 2 that the launcher started, but MPI sees a world of 1 rank"):
        distributed._check_launch(Alone())
    monkeypatch.setenv(variable, "1")
    distributed._check_launch(Alone())


# ---------------------------------------------------------------------- 6. the GPU of each rank on a node


def test_each_rank_takes_the_device_of_its_rank_on_its_node_not_its_global_rank(monkeypatch):
    """Ranks 1 and 3 of a job on two nodes, each the first and second rank of its node,
    take strict:0 and strict:1 (the test suite's two devices), and free the node's communicator."""
    shared = object()
    monkeypatch.setattr(distributed, "_mpi", lambda: types.SimpleNamespace(COMM_TYPE_SHARED=shared))
    freed = []

    class Node:
        def __init__(self, rank):
            self.rank = rank

        def Get_rank(self):
            return self.rank

        def Free(self):
            freed.append(self.rank)

    class World:
        def __init__(self, rank, local):
            self.rank, self.local = rank, local

        def Get_rank(self):
            return self.rank

        def Get_size(self):
            return 4

        def Split_type(self, kind):
            assert kind is shared
            return Node(self.local)

    assert distributed.local_device(World(1, 0), "strict") == "strict:0"
    assert distributed.local_device(World(3, 1), "strict") == "strict:1"
    assert freed == [0, 1]
    assert distributed.local_device(World(3, 1), "strict:0") == "strict:0"  # a device named with its index is itself


# ---------------------------------------------------------------------- 7. a (1, n) array for an (m, n) weight


def test_a_one_row_array_for_a_weight_is_refused_not_broadcast():
    X, y = blobs(n=12)
    net = xpbp.Network([4, 3, 2], device="cpu", seed=0)
    before = host(net)
    net.weights[0] = np.ones((1, 4))
    with pytest.raises(ValueError, match=r"net.weights\[0\] must have shape \(3, 4\), got shape \(1, 4\)"):
        net.predict(X)
    net.weights[0] = before[0]
    net.biases[1] = np.ones((1, 1))
    with pytest.raises(ValueError, match=r"net.biases\[1\] must have shape \(2, 1\), got shape \(1, 1\)"):
        net.fit(X, y % 2, epochs=1, progress=False)
    net.biases[1] = before[3]
    assert all(np.array_equal(a, b) for a, b in zip(host(net), before))


def test_a_model_file_with_a_one_row_weight_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    xpbp.Network([4, 3, 2], device="cpu", seed=0).save(path)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["w0"] = arrays["w0"][:1]
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match=r"w0 has shape \(1, 4\), expected \(3, 4\)"):
        xpbp.load(path, device="cpu")


# ---------------------------------------------------------------------- 8. the fingerprint's row weights


def test_the_fingerprint_tells_rows_apart_beyond_its_first_block_of_rows():
    """Rows i and i + 4,096 (in different blocks of the sum) swapped: another fingerprint."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4100, 3))
    for i, j in [(1, 4097), (0, 4096), (3, 4099)]:
        b = a.copy()
        b[[i, j]] = b[[j, i]]
        assert int(fingerprint(np, a)) != int(fingerprint(np, b))
    assert int(fingerprint(np, a)) == int(fingerprint(np, a.copy()))


# ---------------------------------------------------------------------- 9. data files on disk are hash-checked


def test_a_cached_data_file_that_is_not_the_published_one_is_refused(tmp_path, monkeypatch):
    """MNIST's test files in the cache (the embedded sample is those files), one label
    changed: a well-formed IDX file of the right size, refused by its SHA-256."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("XPBP_DATA", raising=False)
    monkeypatch.setenv("XPBP_DATA_URL", "http://127.0.0.1:9/unused/")
    cache = datasets.cache_dir("mnist")
    cache.mkdir(parents=True)
    embedded = resources.files("xpbp") / "data"
    images, labels = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
    (cache / images).write_bytes((embedded / images).read_bytes())
    data = bytearray(gzip.decompress((embedded / labels).read_bytes()))
    data[8] = (data[8] + 1) % 10  # the first label, another digit
    (cache / labels).write_bytes(gzip.compress(bytes(data)))
    assert hashlib.sha256(data).hexdigest() != datasets._DATASETS["mnist"].files["test-labels"][1]
    for download in (False, True):
        with pytest.raises(datasets.DatasetError, match="t10k-labels-idx1-ubyte.gz is corrupt or not the expected file.*Delete"):
            datasets.load("mnist", "test", download=download)
    data[8] = (data[8] - 1) % 10  # put back: the published file
    (cache / labels).write_bytes(gzip.compress(bytes(data)))
    X, y = datasets.load("mnist", "test", download=False)
    sample = [datasets.load("mnist-sample", split)[1] for split in ("train", "test")]
    assert X.shape == (10000, 784) and np.array_equal(y, np.concatenate(sample))


# ---------------------------------------------------------------------- 10. the CLI's η for each cost


@pytest.mark.parametrize(
    "cost, output, nielsen",
    [("quadratic", "sigmoid", 3.0), ("cross_entropy", "sigmoid", 0.5), ("log_likelihood", "softmax", 0.1)],
)
def test_train_without_eta_uses_nielsens_eta_for_the_cost(cost, output, nielsen):
    assert costs.get(cost).eta == nielsen
    r = run(
        "train",
        "--epochs",
        "1",
        "--batch-size",
        "100",
        "--seed",
        "1",
        "--device",
        "cpu",
        "--json",
        "--quiet",
        "--sizes",
        "784,10",
        "--output-activation",
        output,
        "--cost",
        cost,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["network"]["cost"] == cost and result["training"]["eta"] == nielsen


# ---------------------------------------------------------------------- 11. XPBPClassifier's λ


def test_the_classifiers_lmbda_is_the_networks():
    """A fitted XPBPClassifier with λ > 0 is the Network its settings describe, trained
    with that λ (and not the one trained without it)."""
    pytest.importorskip("sklearn")
    from sklearn.utils import check_random_state

    from xpbp.sklearn import XPBPClassifier

    X, y = blobs(n=40)
    X = X.astype(np.float64)
    clf = XPBPClassifier(
        hidden_layer_sizes=(5,), epochs=3, batch_size=8, eta=0.3, lmbda=4.0, momentum=0.5, device="cpu", random_state=0
    ).fit(X, y)
    seed = int(check_random_state(0).randint(2**31 - 1))  # as the classifier draws the network's seed
    params = {}
    for lmbda in (4.0, 0.0):
        net = xpbp.Network(
            [4, 5, 3], output_activation="softmax", cost="log_likelihood", dtype="float64", device="cpu", seed=seed
        )
        net.fit(X, y, epochs=3, batch_size=8, eta=0.3, lmbda=lmbda, momentum=0.5, progress=False)
        params[lmbda] = host(net)
    assert all(np.array_equal(a, b) for a, b in zip(host(clf.network_), params[4.0]))
    assert not np.array_equal(host(clf.network_)[0], params[0.0][0])


# ---------------------------------------------------------------------- the MPI abort, directly


class _World:
    def __init__(self, size):
        self.size, self.aborted = size, []

    def Get_size(self):
        return self.size

    def Get_rank(self):
        return 1

    def Abort(self, code):
        self.aborted.append(code)


@pytest.mark.parametrize("size, initialized, finalized, aborts", [(2, True, False, [7]), (1, True, False, []),
                                                                  (2, False, False, []), (2, True, True, [])])
def test_an_error_on_one_rank_aborts_the_job_only_where_mpi_runs_several(monkeypatch, capsys, size, initialized, finalized,
                                                                         aborts):
    """end_job calls MPI_Abort with the CLI's exit code when MPI is running with more than one
    rank, and does nothing otherwise (a one-process run, MPI never started or already ended)."""
    import sys

    world = _World(size)
    fake = types.SimpleNamespace(COMM_WORLD=world, Is_initialized=lambda: initialized, Is_finalized=lambda: finalized)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", fake)
    monkeypatch.setattr(distributed.time, "sleep", lambda s: None)
    distributed.end_job(7)
    assert world.aborted == aborts
    assert ("rank 1: ending every rank of the job (MPI_Abort)" in capsys.readouterr().err) == bool(aborts)


@pytest.mark.parametrize("raised, agreed, code, ended", [(ValueError("bad"), False, 1, [1]), (ValueError("bad"), True, 1, []),
                                                          (KeyboardInterrupt(), False, 130, [130])])
def test_the_command_line_ends_the_job_on_an_error_of_one_rank_only(monkeypatch, capsys, raised, agreed, code, ended):
    """An error one rank alone met, or an interrupt, ends the job; one every rank agreed on is
    told by rank 0 and ends each rank normally, since none waits for another."""
    from xpbp import cli

    if agreed:
        raised.agreed = True
    calls = []
    monkeypatch.setattr(distributed, "end_job", calls.append)

    def fails(args):
        raise raised

    monkeypatch.setattr(cli, "_info", fails)
    assert cli.main(["info"]) == code
    assert calls == ended
