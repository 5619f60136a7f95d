"""SoftTargetCE: Hinton et al., "Distilling the Knowledge in a Neural Network" (2015)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from distill.losses.base import (
    LossTerm,
    StepOutputs,
    check_temperature,
    require_teacher,
)
from distill.losses.functional import soft_cross_entropy


class SoftTargetCE(LossTerm):
    """Cross-entropy of the student's softened outputs against the teacher's, times T².

    Both sides use the same temperature, as in Hinton et al. The gradients are
    those of :class:`~distill.losses.KD`; the value is higher by the entropy of
    the teacher's soft targets, so it does not reach 0.

    Args:
        temperature: softening temperature T > 0 (4 is the common choice).
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    compares_outputs = True

    def __init__(self, temperature: float = 4.0, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(weight)
        self.temperature = check_temperature(temperature, "SoftTargetCE")
        self.dim = dim

    def compute(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "SoftTargetCE")
        soft_targets = F.softmax(teacher.float() / self.temperature, dim=self.dim)
        student = outputs.student.float() / self.temperature
        return soft_cross_entropy(student, soft_targets, dim=self.dim) * self.temperature**2

    def per_sample(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "SoftTargetCE")
        soft_targets = F.softmax(teacher.float() / self.temperature, dim=self.dim)
        student = outputs.student.float() / self.temperature
        return soft_cross_entropy(student, soft_targets, dim=self.dim, reduction="none") * self.temperature**2

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, weight={self.weight}"
