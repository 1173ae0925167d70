"""Checkpoints of the scikit-learn drop-ins (`xpbp.sklearn.MLPClassifier(checkpoint=...)`):
where a stochastic solver's run stood after an epoch, so that `fit(resume=True)`
goes on from there and ends where an unbroken run would.

A run is its estimator's settings, its training rows and its network's layout
(`Identity`); a checkpoint of another run is refused, naming what differs. What it
saves (`MLPState`): the parameters, xpbp's optimizer state, scikit-learn's counters,
curves and η, the best epoch's parameters for early stopping, the epoch's order of
the rows, and the random generator's state before the validation split and after the
epoch. Written atomically as an .npz archive without pickles (`xpbp.files`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import files

__all__ = ["Identity", "MLPState", "read", "write"]

FORMAT, VERSION = "xpbp MLP checkpoint", 1
_MT = 624  # words of the Mersenne Twister's state
_HEADER = {"settings", "data", "shapes", "slots", "step", "rng_start", "rng", "counters", "early"}
_COUNTERS = {"n_iter", "t", "stopped", "no_improvement", "learning_rate", "best_loss", "best_validation_score"}
_LONGEST = 1 << 24  # elements of a 1-D member of unknown length: the header's bytes, a curve


@dataclass(frozen=True)
class Identity:
    """What makes a run the same run: `settings` (the estimator's parameters that shape
    training, as JSON), `data` (a checksum of the training rows and targets) and `shapes`
    (each layer's coefs_ shape)."""

    settings: str
    data: int
    shapes: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class MLPState:
    """Where a run stood after epoch `n_iter` (see the module's text). `rng_start` and
    `rng` are `numpy.random.RandomState.get_state()` tuples; `best_coefs` and
    `best_intercepts` are empty without early stopping; `validation_scores` is None
    without it."""

    identity: Identity
    coefs: tuple[np.ndarray, ...]
    intercepts: tuple[np.ndarray, ...]
    step: int
    slots: tuple[np.ndarray, ...]
    rng_start: tuple[Any, ...]
    rng: tuple[Any, ...]
    order: np.ndarray
    counters: dict[str, Any]  # n_iter, t, stopped, no_improvement, learning_rate, best_loss (None with early
    # stopping), best_validation_score (None without it)
    loss_curve: np.ndarray
    validation_scores: np.ndarray | None
    best_coefs: tuple[np.ndarray, ...]
    best_intercepts: tuple[np.ndarray, ...]


def _rng(state: tuple[Any, ...]) -> tuple[np.ndarray, dict[str, Any]]:
    name, keys, pos, has_gauss, cached = state
    return np.asarray(keys, dtype=np.uint32), {
        "name": name,
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def write(path: str | os.PathLike, state: MLPState) -> None:
    """Write `state` to `path` atomically."""
    keys_start, start = _rng(state.rng_start)
    keys, now = _rng(state.rng)
    header = {
        "settings": state.identity.settings,
        "data": state.identity.data,
        "shapes": state.identity.shapes,
        "layers": len(state.coefs),
        "slots": len(state.slots),
        "step": state.step,
        "rng_start": start,
        "rng": now,
        "counters": state.counters,
        "early": state.validation_scores is not None,
    }
    text = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)  # as bytes: text members are kept short
    arrays = {"header": text, "rng_start_keys": keys_start, "rng_keys": keys, "order": state.order}
    arrays["loss_curve"] = np.asarray(state.loss_curve, dtype=np.float64)
    if state.validation_scores is not None:
        arrays["validation_scores"] = np.asarray(state.validation_scores, dtype=np.float64)
    for l, (c, i) in enumerate(zip(state.coefs, state.intercepts)):
        arrays[f"coef{l}"], arrays[f"intercept{l}"] = c, i
    for l, (c, i) in enumerate(zip(state.best_coefs, state.best_intercepts)):
        arrays[f"best_coef{l}"], arrays[f"best_intercept{l}"] = c, i
    for k, s in enumerate(state.slots):
        arrays[f"slot{k}"] = s
    files.write(path, FORMAT, VERSION, arrays)


def read(path: str | os.PathLike, identity: Identity) -> MLPState:
    """The state in the checkpoint at `path` of the run `identity`; `ValueError` naming
    the file and what differs or is damaged."""
    with files.Archive(path, FORMAT) as archive:
        if "format" not in archive.names or archive.scalar("format", "U") != FORMAT:
            raise ValueError(f"{path} is not an xpbp MLP checkpoint (no {FORMAT!r} marker): give checkpoint= a file fit wrote")
        if archive.scalar("version", "iu") != VERSION:
            raise archive.error(f"version {archive.scalar('version', 'iu')}; this xpbp reads version {VERSION}")
        text = archive.array("header", "u", longest=_LONGEST).tobytes()
        try:
            header = json.loads(text.decode())
        except (ValueError, TypeError):
            raise archive.error("its header is not JSON") from None
        if not isinstance(header, dict) or not _HEADER <= set(header):
            raise archive.error(
                f"its header lacks {', '.join(sorted(_HEADER - set(header if isinstance(header, dict) else ())))}"
            )
        counters = header["counters"]
        if not isinstance(counters, dict) or not _COUNTERS <= set(counters):
            raise archive.error("its counters are incomplete")
        for what, value in (("settings", identity.settings), ("data", identity.data), ("shapes", identity.shapes)):
            if json.dumps(header.get(what)) != json.dumps(value):
                raise ValueError(
                    f"{path} is a checkpoint of another run: its {what} differ from this fit's "
                    f"({_shown(header.get(what))} there, {_shown(value)} here); give another checkpoint= or resume=False"
                )
        early = bool(header.get("early"))
        coefs = tuple(archive.array(f"coef{l}", "f", tuple(s)) for l, s in enumerate(identity.shapes))
        intercepts = tuple(archive.array(f"intercept{l}", "f", (s[1],)) for l, s in enumerate(identity.shapes))
        best = [archive.array(f"best_coef{l}", "f", tuple(s)) for l, s in enumerate(identity.shapes)] if early else []
        best_b = [archive.array(f"best_intercept{l}", "f", (s[1],)) for l, s in enumerate(identity.shapes)] if early else []
        size = sum(a * b + b for a, b in identity.shapes)  # θ's, which each slot is laid out like
        slots = tuple(archive.array(f"slot{k}", "f", (size,)) for k in range(int(header.get("slots", 0))))
        order = archive.array("order", "iu", longest=_LONGEST)
        if not np.array_equal(np.sort(order), np.arange(len(order))):
            raise archive.error("its order is not a permutation of the training rows")
        return MLPState(
            identity,
            coefs,
            intercepts,
            int(header["step"]),
            slots,
            _state(archive, header["rng_start"], "rng_start_keys"),
            _state(archive, header["rng"], "rng_keys"),
            order.astype(int),
            dict(header["counters"]),
            archive.array("loss_curve", "f", longest=_LONGEST),
            archive.array("validation_scores", "f", longest=_LONGEST) if early else None,
            tuple(best),
            tuple(best_b),
        )


def _state(archive: files.Archive, rng: dict[str, Any], keys: str) -> tuple[Any, ...]:
    return (rng["name"], archive.array(keys, "u", (_MT,)), rng["pos"], rng["has_gauss"], rng["cached"])


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."
