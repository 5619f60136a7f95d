"""LogitMSE: output matching, Ba & Caruana, "Do Deep Nets Really Need to be Deep?" (2014)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.functional import logit_mse_loss
from distill.losses.logit_term import LogitTerm


class LogitMSE(LogitTerm):
    """Mean squared error between student and teacher outputs, element by element.

    Use it for outputs that are not class scores (regression, embeddings) or to
    match raw logits.

    Args:
        weight: the term's weight in the total loss.
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__(weight)

    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        return logit_mse_loss(student, teacher, reduction=reduction)
