"""Two devices in one process: every allocation, kernel launch and random draw of a
network happens under that network's device.

The strict device models two GPUs, ``strict:0`` and ``strict:1``: an array belongs to
the device that was current when it was made, and work on it while the other device
is current raises (as CuPy's kernels refuse arrays of another GPU). Without a GPU this
shows what two networks on ``cuda:0`` and ``cuda:1`` would do.
"""

import contextlib
import pickle

import numpy as np
import pytest

import xpbp
from xpbp import backend, to_device, to_numpy

import strict


def blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    return (rng.standard_normal((n, 4)) + y[:, None]).astype(np.float32), y


def host(net):
    return [to_numpy(p).copy() for p in net.weights + net.biases]


FIT = dict(batch_size=8, eta=0.3, lmbda=0.2, momentum=0.6, progress=False)


def test_the_strict_device_refuses_work_across_devices():
    a = to_device(np.arange(3.0), "strict:1")
    assert backend.device_of(a) == "strict:1" and strict.CURRENT[0] == 0
    with pytest.raises(strict.WrongDevice, match="array of strict:1 was used while strict:0 was current"):
        a + 1
    with backend.using("strict:1"):
        b = a * 2  # made on strict:1
        c = strict.XP.zeros(3)  # allocated on strict:1
        assert backend.device_of(b) == backend.device_of(c) == "strict:1"
    allocated_on_0 = strict.XP.ones(3)  # while strict:0 is current
    with backend.using("strict:1"), pytest.raises(strict.WrongDevice):
        b + allocated_on_0
    assert strict.CURRENT[0] == 0  # using() gives the device back


def test_two_networks_on_two_devices_trained_interleaved(tmp_path):
    """Each network's arrays, work buffers, permutations and fused kernels stay on its own
    device while the other network trains between its epochs; both end bit-identical
    to the same training on the CPU."""
    X, y = blobs()
    Xv, yv = blobs(30, 1)
    nets = {d: xpbp.Network([4, 6, 3], device=d, seed=4 + int(d[-1])) for d in ("strict:0", "strict:1")}
    refs = {d: xpbp.Network([4, 6, 3], device="cpu", seed=4 + int(d[-1])) for d in nets}
    with backend.using("strict:0"):  # the device current outside does not matter
        for _ in range(3):
            for d, net in nets.items():
                net.fit(X, y, epochs=1, validation_data=(Xv, yv), **FIT)
                refs[d].fit(X, y, epochs=1, validation_data=(Xv, yv), **FIT)
    for d, net in nets.items():
        assert all(backend.device_of(p) == d for p in net.weights + net.biases)
        assert all(np.array_equal(a, b) for a, b in zip(host(net), host(refs[d])))
        assert np.array_equal(net.predict(Xv), refs[d].predict(Xv)) and net.evaluate(Xv, yv) == refs[d].evaluate(Xv, yv)
        x = to_device(X[:5].T, d)
        nabla_b, _ = net.backprop(x, to_device(np.eye(3, dtype=np.float32)[y[:5]].T, d))
        assert backend.device_of(nabla_b[0]) == backend.device_of(net.feedforward(x)) == d
        net.save(tmp_path / "m.npz")
        back = xpbp.load(tmp_path / "m.npz", device=d)
        assert np.array_equal(back.predict(Xv), net.predict(Xv))
        again = pickle.loads(pickle.dumps(net))
        assert again.device == d and np.array_equal(again.predict(Xv), net.predict(Xv))


def test_moving_a_network_between_devices():
    X, y = blobs()
    net = xpbp.Network([4, 5, 3], device="strict:0", seed=1)
    net.fit(X, y, epochs=1, **FIT)
    before = host(net)
    net.to("strict:1")
    assert net.device == "strict:1" and all(backend.device_of(p) == "strict:1" for p in net.weights + net.biases)
    assert all(np.array_equal(a, b) for a, b in zip(before, host(net)))
    net.fit(X, y, epochs=1, **FIT)  # work buffers made anew on strict:1
    ref = xpbp.Network([4, 5, 3], device="cpu", seed=1)
    for _ in range(2):
        ref.fit(X, y, epochs=1, **FIT)
    assert all(np.array_equal(a, b) for a, b in zip(host(net), host(ref)))


def test_a_gpu_epoch_gathers_its_mini_batches_in_few_launches(monkeypatch):
    """At m=10 on 20,000 examples (640 KB), the CPU gathers blocks of 256 KiB (three of X
    in a shuffled epoch, each hot in cache for its steps); a device, as CuPy, gathers the
    epoch in one launch of X and one of the targets (and the training cost takes the targets
    once more). Both train the same bits."""
    X, y = blobs(20_000)
    X = X.astype(np.float64)
    assert 2 * backend.gather_bytes("cpu") < X.nbytes <= backend.gather_bytes("strict:0")
    takes = []
    real = strict.StrictArray.__getattr__

    def counted(self, name):
        if name == "take":
            takes.append(self.shape)
        return real(self, name)

    monkeypatch.setattr(strict.StrictArray, "__getattr__", counted)
    nets = {d: xpbp.Network([4, 5, 3], device=d, seed=1) for d in ("cpu", "strict")}
    seen = []
    for epochs in (1, 3):  # what the epochs take, beside what a fit takes once
        takes.clear()
        nets["strict"].fit(X, y, epochs=epochs, **FIT)
        seen.append(len(takes))
        nets["cpu"].fit(X, y, epochs=epochs, **FIT)
    assert seen[1] - seen[0] == 2 * 3  # two more epochs: X and the targets gathered once each, the targets for the cost
    assert all(np.array_equal(a, b) for a, b in zip(host(nets["cpu"]), host(nets["strict"])))


def test_a_cpu_fit_takes_a_large_hidden_layer_through_its_elementwise_work_in_blocks(monkeypatch):
    """On the CPU, a hidden layer whose z outgrows `Backend.block_bytes` is biased,
    activated and multiplied by σ′ a block of rows at a time (each block hot in cache);
    a GPU, as CuPy, runs each operation once over the whole layer. Both train the same
    bits as the CPU without blocks (here with momentum)."""
    X, y = blobs(600)
    X = X.astype(np.float64)
    kwargs = dict(FIT, batch_size=30, momentum=0.9)
    assert backend.block_bytes("cpu") > 0 and backend.block_bytes("strict:0") == 0
    nets = {}
    for name, device, block in (("blocks", "cpu", 1024), ("whole", "cpu", 0), ("strict", "strict", None)):
        if block is not None:
            monkeypatch.setattr(backend._BACKENDS["cpu"], "block_bytes", block)
        nets[name] = xpbp.Network([4, 24, 24, 3], activation="tanh", device=device, seed=1)
        nets[name].fit(X, y, epochs=2, **kwargs)
    layers = nets["blocks"]._work._batch(30)
    assert [len(layer.blocks) for layer in layers[:-1]] == [3, 3] and layers[-1].blocks is None  # 1 KiB: 8 rows of 30 float32
    assert all(layer.blocks is None for layer in nets["whole"]._work._batch(30))
    for other in ("whole", "strict"):
        assert all(np.array_equal(a, b) for a, b in zip(host(nets["blocks"]), host(nets[other])))


def test_an_empty_share_of_a_mini_batch_steps_on_a_cpu_that_blocks_its_layers():
    """A rank's share of a short last mini-batch may hold no example: its step, with
    blocks on, gives a zero gradient (before, a division by its m = 0 hung the other ranks)."""
    from xpbp.workspace import Workspace

    net = xpbp.Network([4, 24, 3], activation="tanh", dtype="float64", device="cpu", seed=1)
    work = Workspace(net.sizes, net._sigmas, net._cost, net.xp, net.dtype, backend.block_bytes("cpu"))
    work.grad[...] = 1.0
    work.backprop(net.weights, net.biases, np.zeros((4, 0)), np.zeros((3, 0)), 1.0)
    assert not work.grad.any()


def test_predicting_host_rows_sends_them_a_chunk_at_a_time():
    """Rows on the host go to the device a chunk (`xpbp.model.CHUNK`) at a time: a device
    that cannot hold all of X at once still predicts them, as the CPU does."""
    X = np.tile(blobs(3 * xpbp.model.CHUNK)[0], 10)  # 40 features: the outputs are a small part of X's size
    nets = {d: xpbp.Network([40, 5, 3], device=d, seed=1) for d in ("cpu", "strict")}
    strict.MEMORY_LIMIT[0] = X.nbytes // 2  # less than X, more than a chunk of it
    try:
        got = {d: (net.predict(X), net.predict_proba(X)) for d, net in nets.items()}
        with pytest.raises(strict.OutOfMemory):
            xpbp.to_device(X, "strict")  # the limit bites: X whole does not fit
    finally:
        strict.MEMORY_LIMIT[0] = None
    assert np.array_equal(got["cpu"][0], got["strict"][0]) and np.array_equal(got["cpu"][1], got["strict"][1])


def test_arrays_move_between_two_devices_without_the_host(ledger):
    a = to_device(np.arange(4.0), "strict:0")
    ledger.reset()
    b = to_device(a, "strict:1")
    assert backend.device_of(b) == "strict:1" and len(ledger.between) == 1
    assert ledger.to_host == [] and ledger.to_device == []  # as CuPy copies GPU to GPU
    assert to_device(b, "strict:1") is b and len(ledger.between) == 1  # already there: no copy
    assert xpbp.to_numpy(b).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_without_device_scoping_the_second_device_fails(monkeypatch):
    """The test above can fail: with ``using`` made a no-op, a network on strict:1
    allocates on strict:0 and the strict device says so."""
    net = xpbp.Network([4, 5, 3], device="strict:1", seed=1)
    monkeypatch.setattr(strict.StrictBackend, "using", lambda self, index: contextlib.nullcontext())
    X, y = blobs()
    with pytest.raises(strict.WrongDevice):
        net.fit(X, y, epochs=1, **FIT)
