"""Checkpoints of a run: when they are written, by whom, and how a run resumes from one.

``fit(..., checkpoint=path, checkpoint_every=k, resume=True)``: after every k-th epoch
(and the last) the run's whole state — parameters, momentum velocities, the network's
seed and epoch count (which seed each epoch's shuffle), the history, the run's settings
and fingerprints of its data — is written to ``path`` in one host transfer and one
atomic write (the format is :mod:`xpbp.formats`). A run resumed from it checks all of
that against itself and either takes the whole state or changes nothing; it then ends
bit for bit where an uninterrupted run would (on the CPU). In a data-parallel run rank
0 reads and writes, every rank learning the outcome, so no shared file system is
needed, and a run may resume on another number of ranks.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from . import backend, files, formats
from .runs import History, Run

if TYPE_CHECKING:
    from .training import Trainer

__all__ = ["Checkpoints"]

log = logging.getLogger("xpbp.network")
_RUN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Run) if f.default is not dataclasses.MISSING}


class Checkpoints:
    """The checkpoints of one run: its state written to ``path`` every ``every`` epochs
    and after the last; with ``resume``, the run goes on from the state there, if any."""

    def __init__(self, path: str | os.PathLike, every: int = 1, resume: bool = False) -> None:
        self.path, self.every, self.resume = path, every, resume
        self._known: formats.Identity | None = None

    def identity(self, trainer: Trainer) -> formats.Identity:
        """What the run's checkpoints record of it, and what resuming must match; computed
        once (its fingerprints cost a pass over the data)."""
        if self._known is None:
            self._known = formats.Identity(
                trainer.net._config(),
                dataclasses.asdict(trainer.run),
                _RUN_DEFAULTS,
                tuple(vars(History())),
                trainer.data.fingerprints(trainer.xp),
            )
        return self._known

    def after(self, trainer: Trainer, epoch: int) -> None:
        """After ``epoch``: write the state when it is time, by rank 0, every rank learning
        whether the write succeeded."""
        if epoch % self.every and epoch != trainer.run.epochs:
            return
        error = None
        if trainer.speaks:
            try:
                formats.write_checkpoint(self.path, self._state(trainer, epoch))
            except (OSError, ValueError) as e:
                error = e
        if trainer.group is not None:
            trainer.group.agree(error)
        elif error is not None:
            raise error

    def _state(self, trainer: Trainer, epoch: int) -> formats.Checkpoint:
        host = backend.to_numpy(trainer.xp.concatenate(trainer._state()))  # θ and the velocities, one transfer
        size, net = trainer.theta.size, trainer.net
        layout = trainer.workspace.layout
        model = formats.ModelFile(net._config(), *layout.split(layout.views(host[:size])))
        velocity = host[size:] if trainer.velocity is not None else None
        identity = self.identity(trainer)
        return formats.Checkpoint(model, velocity, epoch, net._epochs_trained, identity.run, vars(trainer.history), identity.data)

    def start(self, trainer: Trainer) -> int:
        """Before the first epoch: check that the checkpoint can be written (rank 0, which
        writes it), and with ``resume`` load it, whole or not at all (read by rank 0 and
        shared); the epoch to go on after, 0 when there is none yet."""
        saved, error = None, None
        if trainer.speaks:
            try:
                files.writable(self.path)
                if self.resume and Path(self.path).exists():
                    saved = formats.read_checkpoint(self.path, self.identity(trainer))
            except (OSError, ValueError) as e:
                error = e
        if trainer.group is not None:
            trainer.group.agree(error)
            saved = trainer.group.share(saved)
        elif error is not None:
            raise error
        if saved is None:
            return 0
        # Everything is checked: from here on nothing can fail half-way.
        net = trainer.net
        net._params.load(saved.model.weights + saved.model.biases)
        if trainer.velocity is not None:
            trainer.velocity[...] = backend.to_device(saved.velocity, net.device)
        net.seed, net._epochs_trained = saved.model.config.seed, saved.epochs_trained
        trainer.history = History(**saved.history)
        if trainer.speaks:
            log.info("resuming from %s after epoch %d of %d", self.path, saved.epoch, trainer.run.epochs)
        return saved.epoch
