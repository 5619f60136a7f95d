"""DKD: Zhao et al., "Decoupled Knowledge Distillation" (CVPR 2022)."""

from __future__ import annotations

import math

from torch import Tensor

from distill.errors import DistillError
from distill.losses.base import (
    LossTerm,
    StepOutputs,
    check_temperature,
    require_labels,
    require_teacher,
)
from distill.losses.functional import dkd_loss


class DKD(LossTerm):
    """Target-class and non-target-class KD, weighted separately, with a linear warm-up.

    The loss is multiplied by ``min((current_epoch + 1) / warmup_epochs, 1)``.
    ``current_epoch`` counts from 0 like Lightning's; the official code counts
    from 1 and uses ``epoch / warmup``, so the factors are the same. The module
    sets the epoch through :meth:`on_epoch_start`; until it is called the term
    stays at the first epoch's factor. The value it returns includes the factor.

    Args:
        alpha: weight of the target-class part (TCKD).
        beta: weight of the non-target-class part (NCKD); the paper uses 8 on
            CIFAR-100 and 0.5 on ImageNet.
        temperature: softening temperature T > 0.
        warmup_epochs: epochs over which the loss ramps up linearly (0: no warm-up).
        weight: the term's weight in the total loss.
    """

    needs_labels = True
    compares_outputs = True
    repr_fields = ("alpha", "beta", "temperature", "warmup_epochs")

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        warmup_epochs: int = 20,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not math.isfinite(float(value)) or float(value) < 0:
                raise DistillError(
                    f"DKD: {name} must be a finite number >= 0, got {value}; "
                    "the paper uses alpha=1 and beta=8 (CIFAR-100)"
                )
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise DistillError(
                f"DKD: warmup_epochs must be a whole number >= 0, got {warmup_epochs!r}; "
                "the paper uses 20 (0 switches the warm-up off)"
            )
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.temperature = check_temperature(temperature, "DKD")
        self.warmup_epochs = warmup_epochs
        self.current_epoch = 0

    def on_epoch_start(self, epoch: int) -> None:
        """Record the (0-based) training epoch that is starting, for the warm-up."""
        self.current_epoch = int(epoch)

    @property
    def warmup_factor(self) -> float:
        if self.warmup_epochs == 0:
            return 1.0
        return min((self.current_epoch + 1) / self.warmup_epochs, 1.0)

    def compute(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "DKD")
        labels = require_labels(outputs, "DKD")
        loss = dkd_loss(outputs.student, teacher, labels, self.alpha, self.beta, self.temperature)
        return self.warmup_factor * loss
