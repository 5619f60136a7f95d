"""KD: Hinton et al., "Distilling the Knowledge in a Neural Network" (2015)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.functional import kd_loss
from distill.losses.logit_term import SoftenedLogitTerm


class KD(SoftenedLogitTerm):
    """KL divergence between temperature-softened teacher and student distributions, times T².

    Args:
        temperature: softening temperature T > 0 (4 is the common choice).
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    def __init__(self, temperature: float = 4.0, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(temperature, weight, dim)

    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        return kd_loss(student, teacher, self.temperature, dim=self.dim, reduction=reduction)
