"""KD: Hinton et al., "Distilling the Knowledge in a Neural Network" (2015)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import (
    LossTerm,
    StepOutputs,
    check_temperature,
    require_teacher,
)
from distill.losses.functional import kd_loss


class KD(LossTerm):
    """KL divergence between temperature-softened teacher and student distributions, times T².

    Args:
        temperature: softening temperature T > 0 (4 is the common choice).
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    compares_outputs = True

    def __init__(self, temperature: float = 4.0, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(weight)
        self.temperature = check_temperature(temperature, "KD")
        self.dim = dim

    def compute(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "KD")
        return kd_loss(outputs.student, teacher, self.temperature, dim=self.dim)

    def per_sample(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "KD")
        return kd_loss(outputs.student, teacher, self.temperature, dim=self.dim, reduction="none")

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, weight={self.weight}"
