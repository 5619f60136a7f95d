"""The run's best student: which checkpoint holds it, its validation score, and loading it for the weights file and the report."""

from __future__ import annotations

import logging

import lightning as L

from distill.models.checkpoint import read_checkpoint
from distill.module import DistillationModule

log = logging.getLogger("distill")


def load_best_student(module: DistillationModule, best: str) -> None:
    """Load the best checkpoint's student (and loss-term adapters) into ``module``; without one, keep the last."""
    if not best:
        log.info("No best checkpoint (nothing monitored): the report measures the student of the last step")
        return
    module.load_state_dict(read_checkpoint(best)["state_dict"])
    log.info("Loaded the best student from %s for the weights file and the report", best)


def best_checkpoint(trainer: L.Trainer) -> str:
    """The path of the best checkpoint by the monitored metric ("" when there is none)."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor and callback.best_model_path:
            return callback.best_model_path
    return ""


def best_score(trainer: L.Trainer) -> float | None:
    """The best value of the monitored validation metric (val/acc), None when nothing was monitored."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor and callback.best_model_score is not None:
            return float(callback.best_model_score)
    return None
