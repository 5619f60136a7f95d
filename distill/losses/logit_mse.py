"""LogitMSE: output matching, Ba & Caruana, "Do Deep Nets Really Need to be Deep?" (2014)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import LossTerm, StepOutputs, require_teacher
from distill.losses.functional import logit_mse_loss


class LogitMSE(LossTerm):
    """Mean squared error between student and teacher outputs.

    Use it for outputs that are not class scores (regression, embeddings) or to
    match raw logits.
    """

    compares_outputs = True

    def compute(self, outputs: StepOutputs) -> Tensor:
        return logit_mse_loss(outputs.student, require_teacher(outputs, "LogitMSE"))

    def per_sample(self, outputs: StepOutputs) -> Tensor:
        return logit_mse_loss(outputs.student, require_teacher(outputs, "LogitMSE"), reduction="none")
