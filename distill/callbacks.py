"""Lightning callbacks distill adds to a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class CheckpointOnPreemption(L.Callback):
    """On SIGTERM (cluster pre-emption), keeps the end-of-epoch ``<dirpath>/last.ckpt`` and says how to resume.

    A checkpoint written in the middle of an epoch cannot be resumed exactly: the
    shuffled loader cannot restart at the batch where it stopped. So nothing is
    written over the last end-of-epoch checkpoint; ``resume=true`` continues from it
    and trains the unfinished epoch again, which reproduces an uninterrupted run bit
    for bit. Lightning turns SIGTERM into an exception at the next batch; only that
    exception is reported here.
    """

    def __init__(self, dirpath: str | os.PathLike) -> None:
        self.dirpath = Path(dirpath)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit" or not trainer.is_global_zero:
            return
        last = self.dirpath / "last.ckpt"
        if last.is_file():
            log.warning(
                "Received SIGTERM in epoch %d: kept the end-of-epoch checkpoint %s; resume with resume=true",
                trainer.current_epoch, last,
            )
        else:
            log.warning("Received SIGTERM in epoch %d, before the first epoch ended: nothing to resume", trainer.current_epoch)
