"""TVD: Wen et al., "f-Divergence Minimization for Sequence-Level Knowledge Distillation" (ACL 2023)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import (
    LossTerm,
    StepOutputs,
    check_temperature,
    require_teacher,
)
from distill.losses.functional import tvd_loss


class TVD(LossTerm):
    """Total variation distance between the softened teacher and student distributions.

    Bounded in [0, 1] and symmetric; it has no T² factor (see
    :func:`~distill.losses.functional.tvd_loss`).

    Args:
        temperature: softening temperature T > 0.
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    compares_outputs = True

    def __init__(self, temperature: float = 1.0, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(weight)
        self.temperature = check_temperature(temperature, "TVD")
        self.dim = dim

    def compute(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "TVD")
        return tvd_loss(outputs.student, teacher, self.temperature, dim=self.dim)


    def per_sample(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "TVD")
        return tvd_loss(outputs.student, teacher, self.temperature, dim=self.dim, reduction="none")
    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, weight={self.weight}"
