"""A causal LM trained alone on next-token cross-entropy: how a missing LM teacher (or the baseline) is trained first."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from distill.batch import forward_logits, split_batch
from distill.errors import DistillError
from distill.lm.tokens import next_token_targets, shift_logits
from distill.optim import OptimizerFactory, SchedulerFactory, configure_optimizers


def next_token_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the next token over the loss-carrying positions."""
    targets, mask = next_token_targets(labels)
    return F.cross_entropy(shift_logits(logits)[mask].float(), targets[mask])


class CausalLMTraining(L.LightningModule):
    """Trains ``model`` on the batches' ``labels`` (``-100``: no loss); logs loss, token accuracy, perplexity."""

    def __init__(self, model: nn.Module, optimizer: OptimizerFactory | None = None,
                 lr_scheduler: SchedulerFactory | None = None) -> None:
        super().__init__()
        self.model, self.optimizer_factory, self.lr_scheduler_factory = model, optimizer, lr_scheduler
        self.val_acc, self.test_acc = MeanMetric(), MeanMetric()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def _logits_and_labels(self, batch: Any) -> tuple[Tensor, Tensor]:
        parts = split_batch(batch)
        if parts.labels is None:
            raise DistillError("training a language model without a teacher needs labels, but the batch has none")
        return forward_logits(self.model, parts), parts.labels

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        logits, labels = self._logits_and_labels(batch)
        loss = next_token_cross_entropy(logits, labels)
        if not loss.isfinite():
            raise DistillError(f"the training loss became non-finite at step {self.global_step}; lower the learning rate")
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        return loss

    def _evaluate(self, batch: Any, metric: MeanMetric, stage: str) -> None:
        logits, labels = self._logits_and_labels(batch)
        targets, mask = next_token_targets(labels)
        metric.update((shift_logits(logits).argmax(-1)[mask] == targets[mask]).float())
        self.log(f"{stage}/acc", metric, prog_bar=True, batch_size=len(labels))
        self.log(f"{stage}/loss", next_token_cross_entropy(logits, labels), batch_size=len(labels))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.val_acc, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.test_acc, "test")

    def configure_optimizers(self) -> Any:
        return configure_optimizers(self, self.optimizer_factory, self.lr_scheduler_factory)
