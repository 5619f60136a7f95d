"""A causal LM trained alone on next-token cross-entropy: how a missing LM teacher (or the baseline) is trained first."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from distill.batch import forward_logits, split_batch
from distill.errors import DistillError
from distill.lm.tokens import next_token_targets, shift_logits
from distill.supervised import SupervisedModule


def next_token_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the next token over the loss-carrying positions."""
    targets, mask = next_token_targets(labels)
    return F.cross_entropy(shift_logits(logits)[mask].float(), targets[mask])


class CausalLMTraining(SupervisedModule):
    """Trains ``model`` on the batches' ``labels`` (``-100``: no loss); logs loss and next-token accuracy."""

    def _logits_and_labels(self, batch: Any) -> tuple[Tensor, Tensor]:
        parts = split_batch(batch)
        if parts.labels is None:
            raise DistillError("training a language model without a teacher needs labels, but the batch has none")
        return forward_logits(self.model, parts), parts.labels

    def task_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        return next_token_cross_entropy(logits, labels)

    def correct(self, logits: Tensor, labels: Tensor) -> Tensor:
        targets, mask = next_token_targets(labels)
        return (shift_logits(logits).argmax(-1)[mask] == targets[mask]).float()
