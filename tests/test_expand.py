"""Expanded training data (xpbp.expand): each image moved by a shift and a mirror that
come from its row, its epoch and the seed; the same on every device."""

import numpy as np
import pytest

import xpbp
from xpbp import backend, to_device, to_numpy


def blobs(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    return (rng.standard_normal((n, 4)) + y[:, None]).astype(np.float32), y


def host(net):
    return [to_numpy(p).copy() for p in net.weights + net.biases]



def moved(device, rows, X, shift=2, mirror=True, shape=(6, 7), seed=1, epoch=0):
    from xpbp.expand import Expansion

    canonical = backend.canonical(device)
    with backend.using(canonical):
        e = Expansion(*shape, shift, mirror, canonical)
        return to_numpy(e.apply(e.key(seed, epoch), to_device(np.asarray(rows), canonical), to_device(X, canonical)))


def reference_move(image, dy, dx, flip):
    """np.roll with the pixels rolled in set to 0, after an optional left-right mirror."""
    image = image[:, ::-1] if flip else image
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


def test_each_image_is_one_of_the_shifts_and_mirrors_and_they_are_all_drawn(device, rng):
    X = rng.uniform(0.5, 1.0, (400, 42))
    out = moved(device, np.arange(400), X)
    seen = set()
    for image, got in zip(X, out):
        matches = [(dy, dx, f) for dy in range(-2, 3) for dx in range(-2, 3) for f in (False, True)
                   if np.array_equal(reference_move(image.reshape(6, 7), dy, dx, f).ravel(), got)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 50  # every shift in [-2, 2]² with and without the mirror
    # keyed by the row, not the place in the batch; another epoch moves them elsewhere
    assert np.array_equal(moved(device, [7, 3], X[[7, 3]]), out[[7, 3]])
    assert np.array_equal(moved("cpu", np.arange(400), X), out)
    assert not np.array_equal(moved(device, np.arange(400), X, epoch=1), out)


def test_expansion_trains_alike_on_every_device_and_is_checked(device):
    X, y = blobs(n=60)
    X = np.repeat(X, 4, axis=1)  # 16 inputs: 4 x 4 images
    found = []
    for where in ("cpu", device):
        net = xpbp.Network([16, 8, 3], dtype="float64", device=where, seed=5)
        net.fit(X, y, epochs=2, batch_size=8, eta=0.5, shift=1, mirror=True, progress=False)
        found.append(host(net))
    for a, b in zip(*found):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    plain = xpbp.Network([16, 8, 3], dtype="float64", device="cpu", seed=5)
    plain.fit(X, y, epochs=2, batch_size=8, eta=0.5, progress=False)
    assert not np.allclose(host(plain)[0], found[0][0])
    for kwargs, message in [({"shift": 1, "image_shape": (3, 5)}, "image_shape 3x5 has 15 pixels, but the examples have 16 inputs"),
                            ({"shift": 4}, r"shift must be less than the image's side \(4 pixels\), got 4"),
                            ({"shift": -1}, "shift must be a whole number of pixels >= 0"),
                            ({"mirror": True, "image_shape": (16,)}, r"image_shape must be \(height, width\)")]:
        with pytest.raises(ValueError, match=message):
            xpbp.Network([16, 8, 3], device="cpu", seed=5).fit(X, y, epochs=1, progress=False, **kwargs)
    with pytest.raises(ValueError, match=r"give image_shape=\(height, width\) for 15 inputs"):
        xpbp.Network([15, 8, 3], device="cpu", seed=5).fit(X[:, :15], y, epochs=1, shift=1, progress=False)
