"""TokenKL: Hinton et al., "Distilling the Knowledge in a Neural Network" (2015), per token of a language model."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import StepOutputs
from distill.losses.functional.token_losses import token_kl_loss
from distill.losses.token_loss_term import TokenDivergenceTerm


class TokenKL(TokenDivergenceTerm):
    """Forward KL(teacher || student) of the next-token distributions at temperature T, times T².

    Arguments as :class:`~distill.losses.token_loss_term.TokenDivergenceTerm`.
    """

    def token_loss(self, outputs: StepOutputs, reduction: str, normalizer: float | Tensor | None) -> Tensor:
        return token_kl_loss(*self._inputs(outputs), **self._options(reduction, normalizer))
