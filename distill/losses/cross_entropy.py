"""CrossEntropy: the ordinary task loss on labels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.errors import DistillError
from distill.losses.base import LossTerm, StepOutputs, require_labels


class CrossEntropy(LossTerm):
    """Cross-entropy between the student's logits and the labels.

    Args:
        weight: the term's weight in the total loss.
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`, in [0, 1).
        class_weights: optional per-class weights (one number per class).
    """

    needs_labels = True
    needs_teacher = False

    def __init__(
        self,
        weight: float = 1.0,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(weight)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise DistillError(
                f"CrossEntropy: label_smoothing must be in [0, 1), got {label_smoothing}; "
                "0.1 is a common choice"
            )
        self.label_smoothing = float(label_smoothing)
        weights = None if class_weights is None else torch.as_tensor(list(class_weights), dtype=torch.float32)
        # a buffer follows the module to the right device and dtype
        self.register_buffer("class_weights", weights, persistent=False)

    def compute(self, outputs: StepOutputs) -> Tensor:
        return self._cross_entropy(outputs, "mean")

    def per_sample(self, outputs: StepOutputs) -> Tensor | None:
        """``w[y] * ce`` per sample: with class weights their plain mean differs from the weighted mean."""
        return None if outputs.labels is None else self._cross_entropy(outputs, "none")

    def _cross_entropy(self, outputs: StepOutputs, reduction: str) -> Tensor:
        labels = require_labels(outputs, "CrossEntropy")
        logits = outputs.student.float()
        if self.class_weights is not None and self.class_weights.numel() != logits.shape[1]:
            raise DistillError(
                f"CrossEntropy: class_weights has {self.class_weights.numel()} entries but the "
                f"student predicts {logits.shape[1]} classes; give one weight per class"
            )
        return F.cross_entropy(
            logits, labels, weight=self.class_weights, label_smoothing=self.label_smoothing, reduction=reduction
        )

    def extra_repr(self) -> str:
        return f"weight={self.weight}, label_smoothing={self.label_smoothing}"
