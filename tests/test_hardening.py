"""The third hardening pass: misuse that used to be accepted, or to give someone else's
message, now refused with one naming the argument and the remedy."""

import threading

import numpy as np
import pytest
from test_cli import one_line_error, run

import xpbp


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    return rng.standard_normal((n, 4)) + y[:, None], y


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"eta": "3"}, TypeError, "eta must be a real number, got '3'"),
        ({"eta": True}, TypeError, "eta must be a real number, got True"),
        ({"lmbda": np.bool_(True)}, TypeError, "lmbda must be a real number"),
        ({"momentum": "0.5"}, TypeError, "momentum must be a real number"),
        ({"resume": "no", "checkpoint": "c.npz"}, TypeError, "resume must be True or False, got 'no'"),
        ({"resume": 1, "checkpoint": "c.npz"}, TypeError, "resume must be True or False, got 1"),
    ],
)
def test_text_and_booleans_are_not_numbers_or_flags(kwargs, error, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = blobs()
    net = xpbp.Network([4, 5, 3], device="cpu", seed=0)
    before = [w.copy() for w in net.weights]
    with pytest.raises(error, match=message):
        net.fit(X, y, epochs=1, progress=False, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights)) and list(tmp_path.iterdir()) == []


def test_a_layer_too_wide_for_the_files_is_named():
    with pytest.raises(ValueError, match=r"sizes\[1\] is 9223372036854775808, beyond the 2,147,483,648 neurons"):
        xpbp.Network([4, 2**63])
    with pytest.raises(ValueError, match=r"sizes\[0\] is 2147483649"):
        xpbp.Network([2**31 + 1, 2])


def test_masked_arrays_are_refused_rather_than_their_masks_ignored():
    X, y = blobs()
    masked = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    masked.mask[3, 1] = True
    net = xpbp.Network([4, 5, 3], device="cpu", seed=0)
    for call in (lambda: net.fit(masked, y, epochs=1), lambda: net.predict(masked), lambda: net.evaluate(masked, y)):
        with pytest.raises(TypeError, match=r"X is a masked array, whose mask xpbp would ignore: fill .*X.filled"):
            call()
    with pytest.raises(TypeError, match="y is a masked array"):
        net.fit(X, np.ma.masked_array(y), epochs=1)


def test_a_torch_tensor_with_its_negative_bit_set_keeps_its_sign():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    z = torch.tensor(rng.standard_normal((6, 4)) + 1j * rng.standard_normal((6, 4)))
    lazy = z.conj().imag  # a view with the negative bit set: its values are -z.imag
    assert lazy.is_neg()
    want = -z.imag.numpy()
    assert np.array_equal(xpbp.to_numpy(xpbp.backend.as_array(lazy)), want)
    net = xpbp.Network([4, 3], activation="identity", device="cpu", dtype="float64", seed=0)
    assert np.array_equal(net.outputs(lazy), net.outputs(want))


def test_two_threads_cannot_fit_one_network_at_once():
    X, y = np.random.default_rng(0).random((3000, 20)), np.arange(3000) % 3
    net = xpbp.Network([20, 64, 3], device="cpu", seed=0)
    started, attempted, errors = threading.Event(), threading.Event(), []
    real = net._trainer

    def slow_trainer(*args, **kwargs):  # hold the first fit inside until the second has been tried
        started.set()
        attempted.wait(60)
        return real(*args, **kwargs)

    net._trainer = slow_trainer
    first = threading.Thread(target=lambda: net.fit(X, y, epochs=1, progress=False))
    first.start()
    started.wait(60)
    try:
        net.fit(X, y, epochs=1, progress=False)
    except RuntimeError as e:
        errors.append(str(e))
    attempted.set()
    first.join()
    assert len(errors) == 1 and "already training (fit was called from another thread" in errors[0]
    del net._trainer
    net.fit(X, y, epochs=1, progress=False)  # once the first has returned, the network trains again


def test_bench_refuses_zero_repeats():
    one_line_error(run("bench", "--quick", "--repeats", "0"), 1, "repeats must be a positive integer, got 0")


def reference_draw(sizes, init, dtype, seed):
    """Network's initial θ as it was drawn before: every layer at once in float64, then cast."""
    rng = np.random.default_rng(seed)
    scale = [1.0 / np.sqrt(n) if init == "scaled" else 1.0 for n in sizes[:-1]]
    weights = [rng.standard_normal((n, k)) * s for k, n, s in zip(sizes[:-1], sizes[1:], scale)]
    biases = [rng.standard_normal((n, 1)) for n in sizes[1:]]
    return np.concatenate([p.ravel() for p in weights + biases]).astype(dtype)


@pytest.mark.parametrize("sizes", [[5, 4, 3], [1, 3, 1], [784, 100, 10], [3, 1, 2, 7]])
@pytest.mark.parametrize("init", ["scaled", "large"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameters_drawn_layer_by_layer_are_the_same_bits(sizes, init, dtype):
    net = xpbp.Network(sizes, init=init, dtype=dtype, seed=7, device="cpu")
    got = np.concatenate([p.ravel() for p in net.weights + net.biases])
    assert got.dtype == dtype and np.array_equal(got, reference_draw(sizes, init, dtype, 7))


def test_the_initial_weights_have_the_documented_distribution():
    net = xpbp.Network([400, 300, 2], seed=3, device="cpu", dtype="float64")
    w, b = net.weights[0], net.biases[0]
    # N(0, 1/n_in): the sample variance of 120,000 draws within a few standard errors of 1/400
    assert abs(w.var() * 400 - 1) < 5 * np.sqrt(2 / w.size) and abs(w.mean()) < 5 / np.sqrt(w.size * 400)
    assert abs(b.var() - 1) < 5 * np.sqrt(2 / b.size)
    large = xpbp.Network([400, 300, 2], seed=3, device="cpu", dtype="float64", init="large")
    assert abs(large.weights[0].var() - 1) < 5 * np.sqrt(2 / w.size)


def test_drawing_a_network_holds_its_parameters_and_one_layer_no_more():
    import tracemalloc

    sizes = [1000, 2000, 2000, 10]
    tracemalloc.start()
    net = xpbp.Network(sizes, device="cpu", seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    theta = sum(p.nbytes for p in net.weights + net.biases)
    largest = 2000 * 2000 * 8  # one layer in float64
    assert peak < theta + 1.6 * largest, (peak, theta)  # was 5 θ: every layer in float64, twice, then the cast


def test_the_finiteness_check_finds_one_nan_and_holds_no_copy_of_the_data():
    import tracemalloc

    X = np.zeros((20000, 500), dtype=np.float32)
    assert xpbp.validation.all_finite(X)
    tracemalloc.start()
    xpbp.validation.all_finite(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < X.nbytes / 100, peak  # an isfinite mask would be a quarter of X
    for value in (np.nan, np.inf, -np.inf):
        X[12345, 321] = value
        assert not xpbp.validation.all_finite(X)
        X[12345, 321] = 0
    X[:, 0] = 3e38  # finite values whose float32 sum overflows: told from an Inf by the second look
    assert xpbp.validation.all_finite(X)
    X[5, 7], X[6, 7] = np.inf, -np.inf  # their sum is NaN
    assert not xpbp.validation.all_finite(X)
    X[:, 0], X[5, 7], X[6, 7] = 0, 0, 0
    y = np.arange(20000) % 3
    X[19999, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        xpbp.Network([500, 3], device="cpu").fit(X, y, epochs=1)


def test_the_cuda_device_count_is_asked_of_the_runtime_once(monkeypatch):
    """Array-module lookups (several per step) used to call cudaGetDeviceCount each time."""
    import types

    from xpbp import backend

    calls = []

    class CUDARuntimeError(Exception):
        pass

    def count():
        calls.append(1)
        return 2

    runtime = types.SimpleNamespace(getDeviceCount=count, CUDARuntimeError=CUDARuntimeError, getDevice=lambda: 0)
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))
    monkeypatch.setattr(backend, "cupy", fake)
    cuda = backend.CudaBackend()
    for _ in range(100):
        assert cuda.xp is fake
    cuda.check(1)
    with pytest.raises(RuntimeError, match="cuda:2' does not exist: this machine has 2 CUDA device"):
        cuda.check(2)
    assert len(calls) == 1
