"""Plain supervised training of one model on labels: how a missing teacher is trained first."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from distill.batch import forward_logits, forward_logits_checked, split_batch
from distill.errors import DistillError
from distill.losses.functional import masked_bce_with_logits
from distill.partial_labels import IGNORE_INDEX
from distill.optim import OptimizerFactory, SchedulerFactory, configure_optimizers
from distill.lightning_warnings import ignore_lightning_noise

ignore_lightning_noise()  # the Python API is as quiet as the commands (distill.lightning_warnings)


#: the target value of an unknown yes/no label (as MaskedBCE's default ignore_value)
MISSING_TARGET = -1.0


def _task_loss(logits: Tensor, labels: Tensor) -> Tensor:
    if labels.is_floating_point():
        return masked_bce_with_logits(logits, labels.to(logits.dtype), MISSING_TARGET)
    if not bool((labels != IGNORE_INDEX).any()):  # a partly-labelled batch without any label
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


class SupervisedModule(L.LightningModule):
    """Trains ``model`` on the batch's labels.

    Integer class labels get cross-entropy; float 0/1 targets (one per output,
    ``-1`` where unknown) get binary cross-entropy over the known ones, as
    multi-label and one-output binary models need.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory | None = None,
        lr_scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self._checked = False
        self.val_acc = MeanMetric()
        self.test_acc = MeanMetric()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def _logits_and_labels(self, batch: Any) -> tuple[Tensor, Tensor]:
        parts = split_batch(batch)
        if parts.labels is None:
            raise DistillError("training a model without a teacher needs labels, but the batch has none")
        if self._checked:
            return forward_logits(self.model, parts), parts.labels
        logits = forward_logits_checked(self.model, parts, "model")
        self._checked = True
        return logits, parts.labels

    def task_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The training loss: cross-entropy, or binary cross-entropy over the known yes/no targets."""
        return _task_loss(logits, labels)

    def correct(self, logits: Tensor, labels: Tensor) -> Tensor:
        """1.0 per right prediction, 0.0 per wrong one, over the labelled entries."""
        if labels.is_floating_point():  # yes/no targets: a known entry is right when its logit has the right sign
            known = labels != MISSING_TARGET
            return ((logits[known] > 0) == (labels[known] > 0.5)).float()
        return (logits.argmax(1) == labels).float()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        logits, labels = self._logits_and_labels(batch)
        loss = self.task_loss(logits, labels)
        if not loss.isfinite():
            raise DistillError(
                f"the training loss became non-finite at step {self.global_step} "
                f"(epoch {self.current_epoch}); lower the learning rate"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        self.step_losses = {"train/loss": loss.detach()}  # every step's, for the console's epoch line
        return loss

    def _evaluate(self, batch: Any, metric: MeanMetric, stage: str) -> None:
        logits, labels = self._logits_and_labels(batch)
        metric.update(self.correct(logits, labels))
        self.log(f"{stage}/acc", metric, prog_bar=True, batch_size=len(labels))
        self.log(f"{stage}/loss", self.task_loss(logits, labels), batch_size=len(labels))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.val_acc, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.test_acc, "test")

    def configure_optimizers(self) -> Any:
        return configure_optimizers(self, self.optimizer_factory, self.lr_scheduler_factory)
