"""SoftTargetCE: Hinton et al., "Distilling the Knowledge in a Neural Network" (2015)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from distill.losses.functional import soft_cross_entropy
from distill.losses.logit_term import SoftenedLogitTerm


class SoftTargetCE(SoftenedLogitTerm):
    """Cross-entropy of the student's softened outputs against the teacher's, times T².

    Both sides use the same temperature, as in Hinton et al. The gradients are
    those of :class:`~distill.losses.KD`; the value is higher by the entropy of
    the teacher's soft targets, so it does not reach 0. Its arguments are
    those of :class:`~distill.losses.KD`, with the same defaults.
    """

    def __init__(self, temperature: float = 4.0, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(temperature, weight, dim)

    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        soft_targets = F.softmax(teacher.float() / self.temperature, dim=self.dim)
        softened = student.float() / self.temperature
        return soft_cross_entropy(softened, soft_targets, dim=self.dim, reduction=reduction) * self.temperature**2
