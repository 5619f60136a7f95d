"""PseudoLabel: Lee, "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method" (2013)."""

from __future__ import annotations

from torch import Tensor

from distill.errors import DistillError
from distill.losses.base import LossTerm, StepOutputs, require_teacher
from distill.losses.functional import pseudo_label_loss


class PseudoLabel(LossTerm):
    """Cross-entropy of the student on the teacher's arg-max class: hard labels made by the teacher.

    Needs no labels, so it is the task-like term for unlabelled data
    (``data.labels=false``). With ``threshold`` > 0 only the samples the
    teacher is sure of (top softmax probability >= threshold) count.

    Args:
        threshold: the least teacher confidence, in [0, 1); 0 uses every sample.
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    compares_outputs = True

    def __init__(self, threshold: float = 0.0, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(weight)
        if not 0.0 <= float(threshold) < 1.0:
            raise DistillError(
                f"PseudoLabel: threshold must be in [0, 1), got {threshold}; "
                "0 keeps every sample, 0.9 only those the teacher is sure of"
            )
        self.threshold = float(threshold)
        self.dim = dim

    def compute(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "PseudoLabel")
        return pseudo_label_loss(outputs.student, teacher, self.threshold, dim=self.dim)

    def per_sample(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "PseudoLabel")
        return pseudo_label_loss(outputs.student, teacher, self.threshold, dim=self.dim, reduction="none")

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, weight={self.weight}"
