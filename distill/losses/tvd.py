"""TVD: Wen et al., "f-Divergence Minimization for Sequence-Level Knowledge Distillation" (ACL 2023)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.functional import tvd_loss
from distill.losses.logit_term import SoftenedLogitTerm


class TVD(SoftenedLogitTerm):
    """Total variation distance between the softened teacher and student distributions.

    Bounded in [0, 1] and symmetric; it has no T² factor (see
    :func:`~distill.losses.functional.tvd_loss`).

    Args:
        temperature: softening temperature T > 0.
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        return tvd_loss(student, teacher, self.temperature, dim=self.dim, reduction=reduction)
