"""DIST: Huang et al., "Knowledge Distillation from A Stronger Teacher" (NeurIPS 2022)."""

from __future__ import annotations

import math

from torch import Tensor

from distill.errors import DistillError
from distill.losses.base import (
    LossTerm,
    StepOutputs,
    check_temperature,
    require_teacher,
)
from distill.losses.functional import dist_loss


class DIST(LossTerm):
    """Correlation-based KD: match how the teacher ranks classes and samples, not its probabilities.

    Args:
        beta: weight of the inter-class (per-sample) relation.
        gamma: weight of the intra-class (per-class, across the batch) relation.
        temperature: softening temperature T > 0 (1 on ImageNet, 4 on CIFAR-100).
        weight: the term's weight in the total loss.
    """

    compares_outputs = True
    repr_fields = ("beta", "gamma", "temperature")

    def __init__(
        self, beta: float = 1.0, gamma: float = 1.0, temperature: float = 1.0, weight: float = 1.0
    ) -> None:
        super().__init__(weight)
        for name, value in (("beta", beta), ("gamma", gamma)):
            if not math.isfinite(float(value)) or float(value) < 0:
                raise DistillError(
                    f"DIST: {name} must be a finite number >= 0, got {value}; the paper uses 1"
                )
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.temperature = check_temperature(temperature, "DIST")

    def compute(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "DIST")
        return dist_loss(outputs.student, teacher, self.beta, self.gamma, self.temperature)
