"""Host/device crossings, counted on the strict device (tests/strict.py).

What is shown here holds for CuPy too, since the strict device refuses every implicit
conversion that would synchronise a GPU: fit crosses to the host once per epoch and
never inside the batch loop; predict, evaluate, cost and save once per call; backprop
never.
"""

import operator

import numpy as np
import pytest

import xpbp
from xpbp import to_device, to_numpy

from strict import HostSync, StrictArray


def blobs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    return (rng.standard_normal((n, 4)) + y[:, None]).astype(np.float32), y


def where(stacks):
    return "\n----\n".join(stacks)


@pytest.mark.parametrize("epochs", [1, 3])
def test_fit_syncs_once_per_epoch_and_never_in_the_batch_loop(ledger, epochs):
    X, y = blobs()
    net = xpbp.Network([4, 5, 3], device="strict", seed=0)
    ledger.reset()
    net.fit(X, y, epochs=epochs, batch_size=4, eta=0.5, lmbda=0.1, momentum=0.5,
            validation_data=blobs(20, 1), progress=True)
    assert len(ledger.to_host) == epochs, where(ledger.to_host)
    assert not any("_step" in s or "_backprop" in s for s in ledger.to_host)
    # X, y, X_val, y_val once each; then each epoch's order, drawn on the host (xpbp.draws.order)
    assert len(ledger.to_device) == 4 + epochs, where(ledger.to_device)
    assert all("_order" in s for s in ledger.to_device[4:]), where(ledger.to_device[4:])


def test_fit_on_device_data_checks_it_where_it_lives(ledger):
    """Data already on the device is validated there (one flag or label range each) and
    never copied back or sent again."""
    X, y = (to_device(a, "strict") for a in blobs())
    Xv, yv = (to_device(a, "strict") for a in blobs(20, 1))
    net = xpbp.Network([4, 5, 3], device="strict", seed=0)
    ledger.reset()
    net.fit(X, y, epochs=2, batch_size=4, eta=0.5, validation_data=(Xv, yv), progress=False)
    assert len(ledger.to_device) == 2 and all("_order" in s for s in ledger.to_device), where(ledger.to_device)  # the orders
    assert len(ledger.to_host) == 4 + 1 + 2, where(ledger.to_host)  # 4 checks, the features' scale, then 1 per epoch


def test_calls_that_return_host_values_transfer_once(ledger, tmp_path):
    X, y = blobs()
    net = xpbp.Network([4, 5, 3], device="strict", seed=0)
    for call in (lambda: net.predict(X), lambda: net.evaluate(X, y),
                 lambda: net.cost(X.T, np.eye(3)[y].T), lambda: net.save(tmp_path / "m.npz")):
        ledger.reset()
        call()
        assert len(ledger.to_host) == 1, where(ledger.to_host)


def test_backprop_and_feedforward_never_leave_the_device(ledger):
    X, y = blobs()
    net = xpbp.Network([4, 5, 3], device="strict", seed=0)
    x, t = to_device(X.T, "strict"), to_device(np.eye(3)[y].T, "strict")
    ledger.reset()
    nabla_b, nabla_w = net.backprop(x, t)
    a = net.feedforward(x)
    assert ledger.to_host == [] and ledger.to_device == []
    assert all(isinstance(g, StrictArray) for g in nabla_b + nabla_w + [a])


def test_strict_device_refuses_implicit_conversions(ledger):
    """The wall the tests above rely on: each of these would synchronise a GPU."""
    a = to_device(np.arange(4.0), "strict")
    scalar = a.sum()
    for convert in (float, int, bool, complex, operator.index, np.asarray, np.array, np.sum,
                    lambda v: v.item(), lambda v: v.tolist()):
        with pytest.raises(HostSync):
            convert(scalar)
    with pytest.raises(TypeError):
        memoryview(a)  # no buffer protocol either
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.tanh(a)
    with pytest.raises(TypeError, match="mixed into device arithmetic"):
        a + np.ones(4)
    with pytest.raises(TypeError, match="only through xpbp.to_device"):
        xpbp.backend.resolve("strict").asarray(np.ones(2))
    assert isinstance(np.float64(2.0) * a, StrictArray)  # scalars are fine, as in CuPy
    ledger.reset()
    assert to_numpy(a).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert len(ledger.to_host) == 1 and "test_strict_device_refuses" in ledger.to_host[0]
