"""Training that goes wrong: divergence, out-of-memory, killed runs resumed from a
checkpoint, and arrays from other libraries."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import xpbp
from xpbp import checkpoints, to_numpy

import strict


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    return (rng.standard_normal((n, 4)) + y[:, None]).astype(np.float32), y


def host(net):
    return [to_numpy(p).copy() for p in net.weights + net.biases]


# ---------------------------------------------------------------------- divergence


@pytest.mark.filterwarnings("ignore::xpbp.scaling.ScaleWarning")  # huge rows, on purpose
def test_divergence_is_located_and_the_last_finite_parameters_kept(device):
    """Rows 20-29 (mini-batch 3 of 6, unshuffled) are huge: their gradient overflows float32."""
    X, y = blobs()
    X[20:30] *= 1e30
    kwargs = dict(epochs=2, batch_size=10, eta=0.1, momentum=0.5, shuffle=False, progress=False)
    net = xpbp.Network([4, 5, 3], activation="identity", device=device, seed=1)
    with pytest.raises(xpbp.DivergenceError, match=r"diverged in epoch 1, mini-batch 3 of 6: .*smaller learning rate") as e:
        net.fit(X, y, **kwargs)
    assert (e.value.epoch, e.value.batch, e.value.history.train_cost) == (1, 3, [])
    # The network is where two clean mini-batches leave it.
    ref = xpbp.Network([4, 5, 3], activation="identity", device=device, seed=1)
    ref.fit(X[:20], y[:20], **{**kwargs, "epochs": 1})
    for got, want in zip(host(net), host(ref)):
        assert np.isfinite(got).all() and np.array_equal(got, want)


def test_divergence_in_a_later_epoch_keeps_its_history(device):
    """Full-batch steps just past the stable learning rate grow the weights until, epochs
    later, they overflow; the error comes with the epochs completed before."""
    X, y = blobs()
    net = xpbp.Network([4, 5, 3], activation="identity", device=device, seed=1)
    with pytest.raises(xpbp.DivergenceError) as e:
        net.fit(X, y, epochs=100, batch_size=60, eta=0.3, progress=False)
    assert e.value.epoch > 2 and e.value.batch == 1
    assert len(e.value.history.train_cost) == e.value.epoch - 1
    assert all(np.isfinite(p).all() for p in host(net))


def test_out_of_memory_names_batch_and_layers(ledger):
    X, y = blobs(n=200)
    net = xpbp.Network([4, 64, 3], device="strict", seed=0)
    strict.MEMORY_LIMIT[0] = 64 * 150 * 4 - 1  # the hidden layer's z for a batch of 150 does not fit
    try:
        net.fit(X, y, epochs=1, batch_size=100, eta=0.1, progress=False)  # fits
        with pytest.raises(xpbp.DeviceMemoryError, match=r"out of memory on strict:0 training layers \[4, 64, 3\] "
                           r"with batch_size=150 .*try a smaller batch_size"):
            net.fit(X, y, epochs=1, batch_size=150, eta=0.1, progress=False)
    finally:
        strict.MEMORY_LIMIT[0] = None


# ---------------------------------------------------------------------- checkpoints


def run_kwargs(**extra):
    return {**dict(epochs=5, batch_size=8, eta=0.3, lmbda=0.5, momentum=0.7, progress=False), **extra}


def test_resume_in_process_is_bit_identical(device, tmp_path):
    X, y = blobs()
    whole = xpbp.Network([4, 6, 3], device=device, seed=3)
    history = whole.fit(X, y, validation_data=(X, y), **run_kwargs())
    ckpt = tmp_path / "run.ckpt"
    first = xpbp.Network([4, 6, 3], device=device, seed=3)
    first.fit(X, y, validation_data=(X, y), checkpoint=ckpt, **{**run_kwargs(), "epochs": 2})
    # a later process: another seed, fresh velocities, the same call with resume=True
    # (epochs=2 above was a different run, so continue it as written: 2 done of 2, then extend)
    resumed = xpbp.Network([4, 6, 3], device=device, seed=99)
    with pytest.raises(ValueError, match="epochs=2, this one has epochs=5"):
        resumed.fit(X, y, validation_data=(X, y), checkpoint=ckpt, resume=True, **run_kwargs())
    ckpt.unlink()
    first = xpbp.Network([4, 6, 3], device=device, seed=3)
    first.fit(X, y, validation_data=(X, y), checkpoint=ckpt, checkpoint_every=2,
              **{**run_kwargs(), "epochs": 5, "eta": 0.3})
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]
    resumed = xpbp.Network([4, 6, 3], device=device, seed=99)
    again = resumed.fit(X, y, validation_data=(X, y), checkpoint=ckpt, resume=True, **run_kwargs())
    assert again.train_cost == history.train_cost and again.val_accuracy == history.val_accuracy
    assert resumed.seed == 3
    assert all(np.array_equal(a, b) for a, b in zip(host(whole), host(resumed)))


def stopped_run(device, path, epochs_done=2):
    """A run of run_kwargs() stopped right after writing its checkpoint of epoch ``epochs_done``."""
    X, y = blobs()

    class Stop(Exception):
        pass

    original = checkpoints.Checkpoints.after

    def checkpoint_then_stop(self, trainer, epoch):
        original(self, trainer, epoch)
        if epoch == epochs_done:
            raise Stop

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints.Checkpoints, "after", checkpoint_then_stop)
        with pytest.raises(Stop):
            xpbp.Network([4, 6, 3], device=device, seed=3).fit(X, y, checkpoint=path, **run_kwargs())


def test_resume_from_a_middle_checkpoint(device, tmp_path):
    """A run stopped after epoch 2 of 5 and resumed ends where the uninterrupted one does."""
    X, y = blobs()
    whole = xpbp.Network([4, 6, 3], device=device, seed=3)
    whole.fit(X, y, **run_kwargs())
    ckpt = tmp_path / "run.ckpt"
    stopped_run(device, ckpt)
    resumed = xpbp.Network([4, 6, 3], device=device, seed=3)
    history = resumed.fit(X, y, checkpoint=ckpt, resume=True, **run_kwargs())
    assert len(history.train_cost) == 5
    assert all(np.array_equal(a, b) for a, b in zip(host(whole), host(resumed)))


def _npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_a_damaged_checkpoint_changes_nothing(tmp_path):
    """A resume that finds any damage raises before it changes the network: parameters,
    seed and epoch count stay as they were."""
    X, y = blobs()
    ckpt = tmp_path / "run.ckpt"
    stopped_run("cpu", ckpt)
    data = dict(np.load(ckpt))
    damaged = {
        "no epochs_trained": ({k: v for k, v in data.items() if k != "epochs_trained"}, "'epochs_trained' is missing"),
        "short history": ({**data, "history_train_cost": data["history_train_cost"][:1]}, "lists are not 2 long"),
        "a string for the epoch": ({**data, "epoch": np.array("two")}, "epoch holds <U3, not integers"),
        "another data set's fingerprint": ({**data, "data_train": data["data_train"] + np.uint64(1)}, "other training data"),
        "an unknown member": ({**data, "run_patience": np.array(3)}, "members an xpbp file does not: 'run_patience'"),
        "a negative seed": ({**data, "seed": np.array(-5)}, r"seed must be an integer in \[0, 2\*\*63\)"),
        "an epoch count beyond int64": ({**data, "epochs_trained": np.array(2**63, dtype=np.uint64)}, "with 9223372036854775808 trained"),
        "no training costs": ({**data, "history_train_cost": np.zeros(0)}, "lists are not 2 long"),
        "an epoch of shape (1,)": ({**data, "epoch": np.array([2])}, r"epoch has shape \(1,\), expected \(\)"),
        "velocity cut short": ({**data, "state_velocity": data["state_velocity"][:-1]}, "state_velocity has shape"),
        "NaN in the last bias": ({**data, "b1": np.full_like(data["b1"], np.nan)}, "b1 is not finite"),
        "a setting with no default missing": ({k: v for k, v in data.items() if k != "run_batch_size"}, "'run_batch_size' is missing"),
    }
    for what, (arrays, message) in damaged.items():
        path = tmp_path / f"{what}.ckpt"
        _npz(path, **arrays)
        net = xpbp.Network([4, 6, 3], device="cpu", seed=99)
        before = host(net)
        with pytest.raises(ValueError, match=message) as error:
            net.fit(X, y, checkpoint=path, resume=True, **run_kwargs())
        assert str(path) in str(error.value), what
        assert (net.seed, net._epochs_trained) == (99, 0), what
        assert all(np.array_equal(a, b) for a, b in zip(before, host(net))), what


def test_checkpoints_without_a_later_setting_still_resume(tmp_path):
    """A setting added to fit after a checkpoint was written is read with its default:
    a file without run_eta_decay and run_shuffle (both at their defaults here) resumes
    bit-identically."""
    X, y = blobs()
    whole = xpbp.Network([4, 6, 3], device="cpu", seed=3)
    whole.fit(X, y, **run_kwargs())
    ckpt = tmp_path / "run.ckpt"
    stopped_run("cpu", ckpt)
    _npz(ckpt, **{k: v for k, v in np.load(ckpt).items() if k not in ("run_eta_decay", "run_shuffle")})
    resumed = xpbp.Network([4, 6, 3], device="cpu")
    resumed.fit(X, y, checkpoint=ckpt, resume=True, **run_kwargs())
    assert all(np.array_equal(a, b) for a, b in zip(host(whole), host(resumed)))
    _npz(ckpt, **{k: v for k, v in np.load(ckpt).items() if k != "run_eta_decay"})
    with pytest.raises(ValueError, match="run with eta_decay=0.0, this one has eta_decay=0.5"):
        xpbp.Network([4, 6, 3], device="cpu").fit(X, y, checkpoint=ckpt, resume=True, **run_kwargs(eta_decay=0.5))


def test_a_checkpoint_of_the_previous_format_is_refused_as_older(tmp_path):
    X, y = blobs()
    ckpt = tmp_path / "run.ckpt"
    stopped_run("cpu", ckpt)
    _npz(ckpt, **{**np.load(ckpt), "version": np.array(1)})
    with pytest.raises(ValueError, match=r"format version 1 \(written by an older xpbp\); this xpbp reads version 2"):
        xpbp.Network([4, 6, 3], device="cpu").fit(X, y, checkpoint=ckpt, resume=True, **run_kwargs())


def test_resume_refuses_another_run(tmp_path):
    X, y = blobs()
    ckpt = tmp_path / "run.ckpt"
    xpbp.Network([4, 6, 3], device="cpu", seed=3).fit(X, y, checkpoint=ckpt, **run_kwargs())
    with pytest.raises(ValueError, match="batch_size=8, this one has batch_size=4"):
        xpbp.Network([4, 6, 3], device="cpu").fit(X, y, checkpoint=ckpt, resume=True, **{**run_kwargs(), "batch_size": 4})
    with pytest.raises(ValueError, match="checkpoint of another network"):
        xpbp.Network([4, 7, 3], device="cpu").fit(X, y, checkpoint=ckpt, resume=True, **run_kwargs())
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        xpbp.Network([4, 6, 3], device="cpu").fit(X, y, resume=True, **run_kwargs())
    model = tmp_path / "model.npz"
    xpbp.Network([4, 6, 3], device="cpu").save(model)
    with pytest.raises(ValueError, match="not an xpbp checkpoint"):
        xpbp.Network([4, 6, 3], device="cpu").fit(X, y, checkpoint=model, resume=True, **run_kwargs())


TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import xpbp
    from xpbp import datasets
    X, y = datasets.load("mnist-sample", "train")
    net = xpbp.Network([784, 30, 10], device="cpu", seed=5)
    net.fit(X[:4000], y[:4000], epochs=8, batch_size=10, eta=3.0, lmbda=1.0, momentum=0.2,
            checkpoint=sys.argv[1], resume=True, progress=False)
    net.save(sys.argv[2])
""")


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    """A real process killed with SIGKILL at random moments, resumed until it finishes,
    ends with weights bit-identical to an uninterrupted run."""
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "error"}

    def command(ckpt, out):
        return [sys.executable, str(script), str(ckpt), str(out)]

    def finish(ckpt, out):
        r = subprocess.run(command(ckpt, out), env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr

    t0 = time.monotonic()
    finish(tmp_path / "ref.ckpt", tmp_path / "ref.npz")
    duration = time.monotonic() - t0
    rng = np.random.default_rng()
    outcomes = []
    for trial in range(3):
        ckpt, out = tmp_path / f"t{trial}.ckpt", tmp_path / f"t{trial}.npz"
        kills = 0
        for delay in rng.uniform(0.3, 1.0, size=2) * duration:
            with subprocess.Popen(command(ckpt, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as p:
                time.sleep(delay)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    kills += 1
        finish(ckpt, out)
        for a, b in zip(host(xpbp.load(tmp_path / "ref.npz", device="cpu")), host(xpbp.load(out, device="cpu"))):
            assert np.array_equal(a, b)
        outcomes.append(kills)
        assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]  # no half-written file left
    print(f"kill-and-resume trials: {len(outcomes)}, SIGKILLs per trial: {outcomes}, all bit-identical")


# ---------------------------------------------------------------------- arrays from other libraries


def test_pytorch_tensors_are_used_without_a_copy(device):
    torch = pytest.importorskip("torch")
    X, y = blobs()
    tX, ty = torch.from_numpy(X.copy()), torch.from_numpy(y.copy())
    shared = xpbp.backend.as_array(tX)
    assert isinstance(shared, np.ndarray) and np.shares_memory(shared, tX.numpy())
    a = xpbp.Network([4, 5, 3], device=device, seed=2)
    a.fit(tX, ty, epochs=2, batch_size=10, eta=0.5, validation_data=(tX, ty), progress=False)
    b = xpbp.Network([4, 5, 3], device=device, seed=2)
    b.fit(X, y, epochs=2, batch_size=10, eta=0.5, progress=False)
    assert all(np.array_equal(p, q) for p, q in zip(host(a), host(b)))
    assert np.array_equal(a.predict(tX), b.predict(X))
    x, t = torch.from_numpy(X[:7].T.copy()).double(), torch.eye(3, dtype=torch.float64)[ty[:7]].T.contiguous()
    for g, h in zip(sum(a.backprop(x, t), []), sum(a.backprop(x.numpy(), t.numpy()), [])):
        assert np.array_equal(to_numpy(g), to_numpy(h))
    with pytest.raises(TypeError, match="must hold real numbers"):
        a.predict(torch.zeros((2, 4), dtype=torch.complex64))


def test_resume_refuses_other_data_of_the_same_size(tmp_path):
    """The checkpoint carries fingerprints of the training and validation data: the same
    rows in another order, other rows, or another validation set are refused."""
    X, y = blobs()
    ckpt = tmp_path / "run.ckpt"
    Xv, yv = blobs(20, seed=5)
    xpbp.Network([4, 6, 3], device="cpu", seed=3).fit(X, y, validation_data=(Xv, yv), checkpoint=ckpt, **run_kwargs(epochs=2))
    kwargs = run_kwargs(epochs=4, checkpoint=ckpt, resume=True)
    others = {"reversed rows": (X[::-1], y[::-1], (Xv, yv), "other training data"),
              "other rows": (*blobs(seed=9), (Xv, yv), "other training data"),
              "other labels": (X, (y + 1) % 3, (Xv, yv), "other training data"),
              "other validation rows": (X, y, blobs(20, seed=6), "other validation data"),
              "no validation set": (X, y, None, "other validation data")}
    with pytest.raises(ValueError, match="epochs=2, this one has epochs=4"):  # the settings are checked too
        xpbp.Network([4, 6, 3], device="cpu").fit(X, y, validation_data=(Xv, yv), **kwargs)
    for X2, y2, validation, message in others.values():
        with pytest.raises(ValueError, match=message):
            xpbp.Network([4, 6, 3], device="cpu").fit(X2, y2, validation_data=validation, **run_kwargs(
                epochs=2, checkpoint=ckpt, resume=True))
    history = xpbp.Network([4, 6, 3], device="strict").fit(X, y, validation_data=(Xv, yv), **run_kwargs(
        epochs=2, checkpoint=ckpt, resume=True))  # the same data on another device: its fingerprint is the same
    assert len(history.train_cost) == 2


def test_resume_refuses_float64_data_whose_rows_were_swapped(tmp_path):
    """Values such as 0.5 and 1.0 in float64 have all their low bits zero; the fingerprint
    scrambles each element, so two swapped rows still count."""
    rng = np.random.default_rng(3)
    X = (rng.random((40, 4)) > 0.5).astype(np.float64)
    y = np.repeat([0, 1], 20)
    ckpt = tmp_path / "run.ckpt"
    xpbp.Network([4, 3, 2], dtype="float64", device="cpu", seed=1).fit(X, y, checkpoint=ckpt, **run_kwargs(epochs=1))
    refused = 0
    for i, j in [(0, 1), (2, 7), (20, 33), (25, 39)]:
        if (X[i] == X[j]).all():
            continue
        Z = X.copy()
        Z[[i, j]] = Z[[j, i]]
        with pytest.raises(ValueError, match="other training data"):
            xpbp.Network([4, 3, 2], dtype="float64", device="cpu").fit(Z, y, checkpoint=ckpt, resume=True, **run_kwargs(epochs=1))
        refused += 1
    assert refused >= 3


def test_a_checkpoint_path_that_cannot_be_written_is_refused_before_training(tmp_path):
    X, y = blobs()
    net = xpbp.Network([4, 6, 3], device="cpu", seed=3)
    before = host(net)
    for path, error in ((tmp_path / "absent" / "run.ckpt", FileNotFoundError), (tmp_path, IsADirectoryError)):
        with pytest.raises(error):
            net.fit(X, y, checkpoint=path, **run_kwargs())
        assert all(np.array_equal(a, b) for a, b in zip(before, host(net)))


def test_divergence_errors_cross_process_boundaries():
    import pickle

    error = xpbp.DivergenceError("diverged", epoch=3, batch=2, history=xpbp.History(train_cost=[1.0]))
    back = pickle.loads(pickle.dumps(error))
    assert (str(back), back.epoch, back.batch, back.history.train_cost) == ("diverged", 3, 2, [1.0])


def test_running_out_of_memory_while_setting_up_names_the_run(ledger):
    """The buffers fit makes before its first step are covered too."""
    X, y = blobs(n=200)
    net = xpbp.Network([4, 300, 3], device="strict", seed=0)
    strict.MEMORY_LIMIT[0] = 4 * (4 * 300 + 300 * 3 + 300 + 3) - 1  # the data fits, the gradient buffer does not
    try:
        with pytest.raises(xpbp.DeviceMemoryError, match=r"out of memory on strict:0 training layers \[4, 300, 3\]"):
            net.fit(X, y, epochs=1, batch_size=10, eta=0.1, progress=False)
        strict.MEMORY_LIMIT[0] = 3000  # X itself does not fit
        with pytest.raises(xpbp.DeviceMemoryError, match="out of memory on strict:0 moving the data there"):
            net.fit(X, y, epochs=1, batch_size=10, eta=0.1, progress=False)
    finally:
        strict.MEMORY_LIMIT[0] = None


def test_huge_but_finite_parameters_are_not_divergence():
    """The check is that every parameter and output is finite, not that their sum is: two
    weights of 3e38 sum to Inf in float32 and are still finite."""
    net = xpbp.Network([2, 1], activation="identity", device="cpu", seed=0)
    net.weights[0][...] = 3e38
    net.biases[0][...] = 0
    history = net.fit(np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32), epochs=1, batch_size=4, eta=0.0,
                      progress=False)
    assert history.train_cost == [0.0]


@pytest.mark.filterwarnings("ignore::xpbp.scaling.ScaleWarning")  # huge rows, on purpose
def test_divergence_from_one_huge_row_points_at_the_data():
    X, y = blobs()
    X[45] = 1e7  # in mini-batch 5; the overflow shows later
    with pytest.raises(xpbp.DivergenceError, match=r"Its inputs reach 1e\+07: scale the data"):
        xpbp.Network([4, 5, 3], activation="identity", device="cpu", seed=1).fit(
            X, y, epochs=50, batch_size=10, eta=1.0, shuffle=False, progress=False)


def test_resume_with_validation_data_the_checkpoint_was_written_without_is_refused(tmp_path):
    X, y = blobs()
    ckpt = tmp_path / "run.ckpt"
    xpbp.Network([4, 6, 3], device="cpu", seed=3).fit(X, y, checkpoint=ckpt, **run_kwargs(epochs=2))
    with pytest.raises(ValueError, match="other validation data"):
        xpbp.Network([4, 6, 3], device="cpu").fit(X, y, validation_data=(X, y), checkpoint=ckpt, resume=True,
                                                  **run_kwargs(epochs=2))


def test_a_checkpoint_is_written_after_the_last_epoch_too(tmp_path):
    X, y = blobs()
    ckpt = tmp_path / "run.ckpt"
    xpbp.Network([4, 6, 3], device="cpu", seed=3).fit(X, y, checkpoint=ckpt, checkpoint_every=2, **run_kwargs(epochs=3))
    assert int(np.load(ckpt)["epoch"]) == 3


# ---------------------------------------------------------------------- checkpoints of the training parts


PARTS = dict(epochs=12, batch_size=8, optimizer="adam", eta=0.05, dropout=0.3, validation_fraction=0.25, early_stopping=3,
             lmbda=0.5, regularization="l1", progress=False)


def parts_stopped(device, path, epochs_done):
    X, y = blobs(n=80)

    class Stop(Exception):
        pass

    original = checkpoints.Checkpoints.after

    def checkpoint_then_stop(self, trainer, epoch):
        original(self, trainer, epoch)
        if epoch == epochs_done:
            raise Stop

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints.Checkpoints, "after", checkpoint_then_stop)
        with pytest.raises(Stop):
            xpbp.Network([4, 16, 3], device=device, seed=3).fit(X, y, checkpoint=path, **PARTS)


def test_a_run_with_adam_dropout_and_early_stopping_resumes_bit_identically(device, tmp_path):
    """Stopped after each of epochs 1-4 and resumed: the same parameters, history and
    stopping point as the unbroken run (Adam's moments and step, the masks' keys, the split,
    the best epoch's θ and the count since it all come back)."""
    X, y = blobs(n=80)
    whole = xpbp.Network([4, 16, 3], device=device, seed=3)
    history = whole.fit(X, y, **PARTS)
    assert history.stopped_early and history.best_epoch < len(history.train_cost) < 12
    for done in range(1, 5):
        ckpt = tmp_path / f"run{done}.ckpt"
        parts_stopped(device, ckpt, done)
        resumed = xpbp.Network([4, 16, 3], device=device, seed=99)
        again = resumed.fit(X, y, checkpoint=ckpt, resume=True, **PARTS)
        assert again.train_cost == history.train_cost and again.val_accuracy == history.val_accuracy
        assert (again.best_epoch, again.stopped_early) == (history.best_epoch, history.stopped_early)
        assert all(np.array_equal(a, b) for a, b in zip(host(whole), host(resumed))), done
    # resuming a run that has ended changes nothing
    ended = xpbp.Network([4, 16, 3], device=device, seed=99)
    last = ended.fit(X, y, checkpoint=ckpt, resume=True, **PARTS)
    assert last.train_cost == history.train_cost and all(np.array_equal(a, b) for a, b in zip(host(whole), host(ended)))


def test_a_checkpoint_of_another_optimizer_or_setting_is_refused(tmp_path):
    X, y = blobs(n=80)
    ckpt = tmp_path / "run.ckpt"
    parts_stopped("cpu", ckpt, 2)
    for change, message in [({"optimizer": "sgd", "momentum": 0.5}, "optimizer 'adam', this one has 'sgd'"),
                            ({"optimizer": xpbp.optimizers.Adam(beta1=0.8)}, r"the optimizer adam\(beta1=0.9, .*this one has adam\(beta1=0.8"),
                            ({"dropout": 0.4}, "dropout=0.3, this one has dropout=0.4"),
                            ({"regularization": "l2"}, "regularization=l1, this one has regularization=l2")]:
        net = xpbp.Network([4, 16, 3], device="cpu", seed=99)
        with pytest.raises(ValueError, match=message):
            net.fit(X, y, checkpoint=ckpt, resume=True, **{**PARTS, **change})
        assert (net.seed, net._epochs_trained) == (99, 0)


def test_a_damaged_history_or_watch_names_the_file(tmp_path):
    X, y = blobs(n=80)
    ckpt = tmp_path / "run.ckpt"
    parts_stopped("cpu", ckpt, 2)
    data = dict(np.load(ckpt))
    for what, (arrays, message) in {
        "a 0-d history": ({**data, "history_val_cost": np.array(0.5)}, "history_val_cost is not a list"),
        "a best epoch not done": ({**data, "history_best_epoch": np.array(5)}, "history_best_epoch 5 is not an epoch done"),
        "a negative count": ({**data, "watch_since": np.array(-1)}, "early-stopping state"),
        "Adam's m cut short": ({**data, "state_m": data["state_m"][:-1]}, "state_m has shape"),
        "no best θ": ({k: v for k, v in data.items() if k != "best_theta"}, "'best_theta' is missing"),
    }.items():
        path = tmp_path / f"{what}.ckpt"
        _npz(path, **arrays)
        with pytest.raises(ValueError, match=message) as error:
            xpbp.Network([4, 16, 3], device="cpu", seed=99).fit(X, y, checkpoint=path, resume=True, **PARTS)
        assert str(path) in str(error.value), what


def test_a_version_2_checkpoint_still_resumes(tmp_path):
    """tests/data/checkpoint-v2.npz was written by xpbp before this format (SGD's velocity as
    ``velocity``, the momentum a setting of the run), stopped after epoch 2 of 5; resumed, the
    run ends where an unbroken run of today's xpbp does."""
    X, y = blobs()
    kwargs = dict(validation_data=(X[:20], y[:20]), **run_kwargs())
    whole = xpbp.Network([4, 6, 3], device="cpu", seed=3)
    history = whole.fit(X, y, **kwargs)
    ckpt = tmp_path / "v2.ckpt"
    ckpt.write_bytes((Path(__file__).parent / "data" / "checkpoint-v2.npz").read_bytes())
    resumed = xpbp.Network([4, 6, 3], device="cpu", seed=99)
    again = resumed.fit(X, y, checkpoint=ckpt, resume=True, **kwargs)
    assert again.train_cost[2:] == history.train_cost[2:] and again.val_accuracy == history.val_accuracy
    assert all(np.array_equal(a, b) for a, b in zip(host(whole), host(resumed)))
    assert int(np.load(ckpt)["version"]) == 3  # rewritten in today's format as it went on
    with pytest.raises(ValueError, match=r"run with the optimizer sgd\(momentum=0.7, nesterov=False\), this one has sgd\(momentum=0.6"):
        ckpt.write_bytes((Path(__file__).parent / "data" / "checkpoint-v2.npz").read_bytes())
        xpbp.Network([4, 6, 3], device="cpu").fit(X, y, checkpoint=ckpt, resume=True, **{**kwargs, "momentum": 0.6})
