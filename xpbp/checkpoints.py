"""Checkpoints of a run: when they are written, by whom, and how a run resumes from one.

`fit(..., checkpoint=path, checkpoint_every=k, resume=True)`: after every k-th epoch
(and the last, also when early stopping ends the run) the run's whole state — θ, the
optimizer's state, the network's seed and epoch count (which key each epoch's shuffle
and dropout masks), the history, early stopping's state and best θ — is written to
`path` with the run's settings and fingerprints of its data, in one host transfer and
one atomic write (the format is `xpbp.formats`). A run resumed from it checks all
of that against itself and either takes the whole state or changes nothing; it then
ends bit for bit where an uninterrupted run would (on the CPU). In a data-parallel run
rank 0 reads and writes, every rank learning the outcome, so no shared file system is
needed, and a run may resume on another number of ranks.

The run is seen through `Resumable`, which `xpbp.training.Trainer` is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

from . import files, formats
from .distributed import Group
from .runs import Run, State

__all__ = ["Checkpoints", "Resumable"]

log = logging.getLogger("xpbp.network")


class Resumable(Protocol):
    """What checkpoints need of a run."""

    run: Run
    group: Group | None
    finished: bool  # whether the run has ended with the epoch just done

    @property
    def speaks(self) -> bool: ...  # whether this process writes: rank 0

    def identity(self) -> formats.Identity: ...

    def state(self, epoch: int) -> State: ...

    def restore(self, state: State) -> None: ...


class Checkpoints:
    """The checkpoints of one run: its state written to `path` every `every` epochs
    and after the last; with `resume`, the run goes on from the state there, if any."""

    def __init__(self, path: str | os.PathLike, every: int = 1, resume: bool = False) -> None:
        self.path, self.every, self.resume = path, every, resume

    def after(self, trainer: Resumable, epoch: int) -> None:
        """After `epoch`: write the state when it is time, by rank 0, every rank learning
        whether the write succeeded."""
        if epoch % self.every and not trainer.finished:
            return
        error = None
        if trainer.speaks:
            try:
                formats.write_checkpoint(self.path, formats.Checkpoint(trainer.identity(), trainer.state(epoch)))
            except (OSError, ValueError) as e:
                error = e
        if trainer.group is not None:
            trainer.group.agree(error)
        elif error is not None:
            raise error

    def start(self, trainer: Resumable) -> int:
        """Before the first epoch: check that the checkpoint can be written (rank 0, which
        writes it), and with `resume` load it, whole or not at all (read by rank 0 and
        shared); the epoch to go on after, 0 when there is none yet."""
        saved, error = None, None
        if trainer.speaks:
            try:
                files.writable(self.path)
                if self.resume and Path(self.path).exists():
                    saved = formats.read_checkpoint(self.path, trainer.identity())
            except (OSError, ValueError) as e:
                error = e
        if trainer.group is not None:
            trainer.group.agree(error)
            saved = trainer.group.share(saved)
        elif error is not None:
            raise error
        if saved is None:
            return 0
        trainer.restore(saved)  # everything is checked: from here on nothing can fail half-way
        if trainer.speaks:
            log.info("resuming from %s after epoch %d of %d", self.path, saved.epoch, trainer.run.epochs)
        return saved.epoch
