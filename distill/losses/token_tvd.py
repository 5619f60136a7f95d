"""TokenTVD: f-DISTILL (Wen et al., ACL 2023), total variation distance per token of a language model."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import StepOutputs
from distill.losses.functional.token_losses import token_tvd_loss
from distill.losses.token_loss_term import TokenDivergenceTerm


class TokenTVD(TokenDivergenceTerm):
    """Half the L1 distance between the next-token distributions at temperature T (no T² factor).

    Arguments as :class:`~distill.losses.token_loss_term.TokenDivergenceTerm`.
    """

    def token_loss(self, outputs: StepOutputs, reduction: str, normalizer: float | Tensor | None) -> Tensor:
        return token_tvd_loss(*self._inputs(outputs), **self._options(reduction, normalizer))
