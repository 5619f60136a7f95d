"""PseudoLabel: Lee, "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method" (2013)."""

from __future__ import annotations

from torch import Tensor

from distill.errors import DistillError
from distill.losses.functional import pseudo_label_loss
from distill.losses.logit_term import LogitTerm


class PseudoLabel(LogitTerm):
    """Cross-entropy of the student on the teacher's arg-max class: hard labels made by the teacher.

    Needs no labels, so it is the task-like term for unlabelled data
    (``data.labels=false``). With ``threshold`` > 0 only the samples the
    teacher is sure of (top softmax probability >= threshold) count.

    Args:
        threshold: the least teacher confidence, in [0, 1); 0 uses every sample.
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    repr_fields = ("threshold",)

    def __init__(self, threshold: float = 0.0, weight: float = 1.0, dim: int = -1) -> None:
        if not 0.0 <= float(threshold) < 1.0:
            raise DistillError(
                f"PseudoLabel: threshold must be in [0, 1), got {threshold}; "
                "0 keeps every sample, 0.9 only those the teacher is sure of"
            )
        super().__init__(weight, dim)
        self.threshold = float(threshold)

    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        return pseudo_label_loss(student, teacher, self.threshold, dim=self.dim, reduction=reduction)
