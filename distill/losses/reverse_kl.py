"""ReverseKL: Gu et al., "MiniLLM: Knowledge Distillation of Large Language Models" (ICLR 2024)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import (
    LossTerm,
    StepOutputs,
    check_temperature,
    require_teacher,
)
from distill.losses.functional import reverse_kl_loss


class ReverseKL(LossTerm):
    """KL divergence from the student's to the teacher's softened distribution, times T².

    Mode-seeking: the student concentrates on what the teacher is sure of
    instead of spreading mass over every class the teacher allows.

    Args:
        temperature: softening temperature T > 0 (MiniLLM uses 1).
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    compares_outputs = True

    def __init__(self, temperature: float = 1.0, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(weight)
        self.temperature = check_temperature(temperature, "ReverseKL")
        self.dim = dim

    def compute(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "ReverseKL")
        return reverse_kl_loss(outputs.student, teacher, self.temperature, dim=self.dim)


    def per_sample(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "ReverseKL")
        return reverse_kl_loss(outputs.student, teacher, self.temperature, dim=self.dim, reduction="none")
    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, weight={self.weight}"
