"""JAX as a peer: the same networks, cost and data, trained by SGD two ways.

- ``jax step``: a jitted training step (gather, forward, ``jax.grad``, update) called
  from Python once per mini-batch, as one writes a JAX training loop first;
- ``jax scan``: the whole epoch compiled by XLA, the step under ``jax.lax.scan`` over
  the epoch's mini-batches, so that no Python runs between steps: the strongest thing
  a user could write instead of xpbp's ``fit`` on a CPU.

Both shuffle each epoch (a permutation drawn with ``jax.random``, the mini-batches
gathered from it on the device), start from xpbp's initial weights, use sigmoid layers
and the quadratic cost of the mean over the mini-batch, as xpbp's ``fit`` does here.
Needs ``pip install jax`` (skipped with a note otherwise); float64 turns on JAX's x64 mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

import xpbp

ETA = 0.1


def _setup(cell: Any, n: int) -> tuple[Any, ...]:
    import jax
    import jax.numpy as jnp

    if cell.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from .suite import _data

    net = xpbp.Network(list(cell.sizes), dtype=cell.dtype, device="cpu", seed=0)
    params = [(jnp.asarray(w), jnp.asarray(b[:, 0])) for w, b in zip(net.weights, net.biases)]
    X, y = _data(n, cell)
    Y = np.eye(cell.sizes[-1], dtype=cell.dtype)[y]

    def loss(params: Any, x: Any, t: Any) -> Any:
        a = x
        for w, b in params:
            a = jax.nn.sigmoid(a @ w.T + b)
        return 0.5 * jnp.sum((a - t) ** 2) / x.shape[0]

    def step(params: Any, x: Any, t: Any) -> Any:
        return jax.tree.map(lambda p, g: p - ETA * g, params, jax.grad(loss)(params, x, t))

    return jax, jnp, params, jnp.asarray(X), jnp.asarray(Y), step


def jax_step(cell: Any, n: int) -> Callable[[], tuple[int, float]]:
    """Epochs of a jitted step called once per mini-batch from Python."""
    jax, jnp, params, X, Y, step = _setup(cell, n)
    m = cell.batch
    gathered = jax.jit(lambda p, idx: step(p, X[idx], Y[idx]))
    state = {"params": params, "key": jax.random.PRNGKey(0)}

    def epoch() -> tuple[int, float]:
        start = time.perf_counter()
        state["key"], key = jax.random.split(state["key"])
        order = jax.random.permutation(key, n)
        p = state["params"]
        for k in range(0, n, m):
            p = gathered(p, order[k : k + m])
        jax.block_until_ready(p)
        state["params"] = p
        return n, time.perf_counter() - start

    return epoch


def jax_scan(cell: Any, n: int) -> Callable[[], tuple[int, float]]:
    """Epochs compiled whole by XLA: the step under ``lax.scan`` over the mini-batches."""
    jax, jnp, params, X, Y, step = _setup(cell, n)
    m = cell.batch

    @jax.jit
    def run(p: Any, key: Any) -> Any:
        order = jax.random.permutation(key, n)[: n // m * m].reshape(n // m, m)
        return jax.lax.scan(lambda q, idx: (step(q, X[idx], Y[idx]), None), p, order)[0]

    state = {"params": params, "key": jax.random.PRNGKey(0)}

    def epoch() -> tuple[int, float]:
        start = time.perf_counter()
        state["key"], key = jax.random.split(state["key"])
        state["params"] = jax.block_until_ready(run(state["params"], key))
        return n // m * m, time.perf_counter() - start

    return epoch
