"""Lightning callbacks distill adds to a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from distill.io import atomic_torch_save

log = logging.getLogger(__name__)


class CheckpointOnPreemption(L.Callback):
    """Saves ``<dirpath>/last.ckpt`` when the run is stopped by SIGTERM (cluster pre-emption).

    Lightning turns SIGTERM into an exception at the next batch; other
    exceptions (a NaN loss, a bug) save nothing, so the last good checkpoint is kept.
    The file is written atomically: a kill during the write leaves the old one.
    """

    def __init__(self, dirpath: str | os.PathLike) -> None:
        self.dirpath = Path(dirpath)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit":
            return
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        if trainer.is_global_zero:
            path = atomic_torch_save(checkpoint, self.dirpath / "last.ckpt")
            log.warning("Received SIGTERM: saved %s; resume with resume=true", path)
