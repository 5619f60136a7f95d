"""MaskedBCE: the task loss for multi-label targets, some of them unknown."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from distill.errors import DistillError
from distill.losses.base import LossTerm, StepOutputs, require_labels
from distill.losses.functional import masked_bce_with_logits


class MaskedBCE(LossTerm):
    """Binary cross-entropy of the student's logits against multi-label targets.

    Targets are 0/1 per class, with ``ignore_value`` where the label is unknown;
    those entries are left out of the loss and of the mean. Integer class labels
    (one per sample, as single-label data gives) are read as one-hot targets:
    one binary one-vs-rest task per class.

    Args:
        weight: the term's weight in the total loss.
        ignore_value: the target value that marks an unknown label.
        pos_weight: optional weight of the positive examples, one number per class.
    """

    needs_labels = True
    needs_teacher = False

    def __init__(
        self,
        weight: float = 1.0,
        ignore_value: float = -1,
        pos_weight: Sequence[float] | None = None,
    ) -> None:
        super().__init__(weight)
        self.ignore_value = ignore_value
        weights = None
        if pos_weight is not None:
            weights = torch.as_tensor(list(pos_weight), dtype=torch.float32)
            if not torch.isfinite(weights).all() or (weights < 0).any():
                raise DistillError(
                    f"MaskedBCE: pos_weight must hold finite numbers >= 0, got {list(pos_weight)}; "
                    "a common choice is negatives / positives per class"
                )
        # a buffer follows the module to the right device and dtype
        self.register_buffer("pos_weight", weights, persistent=False)

    def compute(self, outputs: StepOutputs) -> Tensor:
        labels = require_labels(outputs, "MaskedBCE")
        if self.pos_weight is not None and self.pos_weight.numel() != outputs.student.shape[-1]:
            raise DistillError(
                f"MaskedBCE: pos_weight has {self.pos_weight.numel()} entries but the student "
                f"predicts {outputs.student.shape[-1]} classes; give one weight per class"
            )
        if not labels.is_floating_point() and labels.dim() == outputs.student.dim() - 1:
            labels = torch.nn.functional.one_hot(labels, outputs.student.shape[-1]).float()
        return masked_bce_with_logits(outputs.student, labels, self.ignore_value, self.pos_weight)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, ignore_value={self.ignore_value}"
