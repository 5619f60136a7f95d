"""TokenReverseKL: MiniLLM (Gu et al., ICLR 2024), per token of a language model."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import StepOutputs
from distill.losses.functional.token_losses import token_reverse_kl_loss
from distill.losses.token_loss_term import TokenDivergenceTerm


class TokenReverseKL(TokenDivergenceTerm):
    """Reverse KL(student || teacher) of the next-token distributions at temperature T, times T².

    Mode-seeking: the student puts its mass where the teacher is confident.
    Arguments as :class:`~distill.losses.token_loss_term.TokenDivergenceTerm`.
    """

    def token_loss(self, outputs: StepOutputs, reduction: str, normalizer: float | Tensor | None) -> Tensor:
        return token_reverse_kl_loss(*self._inputs(outputs), **self._options(reduction, normalizer))
