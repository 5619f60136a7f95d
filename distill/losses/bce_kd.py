"""BCEKD: one binary KD per label, as in Yang et al., "Multi-Label Knowledge Distillation" (ICCV 2023)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import (
    LossTerm,
    StepOutputs,
    check_temperature,
    require_teacher,
)
from distill.losses.functional import bce_kd_loss


class BCEKD(LossTerm):
    """Binary cross-entropy between the student's and the teacher's sigmoid outputs, times T².

    For multi-label classifiers, whose outputs are independent yes/no scores
    rather than one softmax over classes.

    Args:
        temperature: softening temperature T > 0.
        weight: the term's weight in the total loss.
    """

    compares_outputs = True

    def __init__(self, temperature: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.temperature = check_temperature(temperature, "BCEKD")

    def compute(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "BCEKD")
        return bce_kd_loss(outputs.student, teacher, self.temperature)

    def per_sample(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "BCEKD")
        return bce_kd_loss(outputs.student, teacher, self.temperature, reduction="none")

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, weight={self.weight}"
