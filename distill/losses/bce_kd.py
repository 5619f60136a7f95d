"""BCEKD: one binary KD per label, as in Yang et al., "Multi-Label Knowledge Distillation" (ICCV 2023)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.functional import bce_kd_loss
from distill.losses.logit_term import SoftenedLogitTerm


class BCEKD(SoftenedLogitTerm):
    """Binary cross-entropy between the student's and the teacher's sigmoid outputs, times T².

    For multi-label classifiers, whose outputs are independent yes/no scores
    rather than one softmax over classes.

    Args:
        temperature: softening temperature T > 0.
        weight: the term's weight in the total loss.
    """

    def __init__(self, temperature: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(temperature, weight)

    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        return bce_kd_loss(student, teacher, self.temperature, reduction=reduction)
