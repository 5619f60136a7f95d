"""ReverseKL: Gu et al., "MiniLLM: Knowledge Distillation of Large Language Models" (ICLR 2024)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.functional import reverse_kl_loss
from distill.losses.logit_term import SoftenedLogitTerm


class ReverseKL(SoftenedLogitTerm):
    """KL divergence from the student's to the teacher's softened distribution, times T².

    Mode-seeking: the student concentrates on what the teacher is sure of
    instead of spreading mass over every class the teacher allows.

    Args:
        temperature: softening temperature T > 0 (MiniLLM uses 1).
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        return reverse_kl_loss(student, teacher, self.temperature, dim=self.dim, reduction=reduction)
