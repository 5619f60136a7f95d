"""JSD: Agarwal et al., "On-Policy Distillation of Language Models" (GKD, ICLR 2024)."""

from __future__ import annotations

import math

from torch import Tensor

from distill.errors import DistillError
from distill.losses.functional import jsd_loss
from distill.losses.logit_term import SoftenedLogitTerm


class JSD(SoftenedLogitTerm):
    """Generalised Jensen-Shannon divergence between teacher and student, times T².

    ``beta`` moves the loss between forward KL (small beta) and reverse KL
    (beta near 1); 0.5 is the symmetric Jensen-Shannon divergence.

    Args:
        beta: the teacher's share of the mixture distribution, strictly between 0 and 1.
        temperature: softening temperature T > 0.
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    repr_fields = ("beta", "temperature")

    def __init__(
        self, beta: float = 0.5, temperature: float = 1.0, weight: float = 1.0, dim: int = -1
    ) -> None:
        beta = float(beta)
        # at exactly 0 or 1 the divergence is identically 0 and the term would teach nothing
        if not 0.0 < beta < 1.0 or not math.isfinite(beta):
            raise DistillError(
                f"JSD: beta must be strictly between 0 and 1, got {beta}; "
                "0.5 is the symmetric Jensen-Shannon divergence"
            )
        super().__init__(temperature, weight, dim)
        self.beta = beta

    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        return jsd_loss(student, teacher, self.beta, self.temperature, dim=self.dim, reduction=reduction)
