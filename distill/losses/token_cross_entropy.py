"""TokenCrossEntropy: next-token cross-entropy on the data's tokens (the language-modelling loss)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import StepOutputs, require_labels
from distill.losses.functional.token_losses import token_cross_entropy
from distill.losses.token_loss_term import TokenLossTerm


class TokenCrossEntropy(TokenLossTerm):
    """-log q(next token) averaged over the loss-carrying tokens; needs no teacher.

    Arguments as :class:`~distill.losses.token_loss_term.TokenLossTerm` (no temperature, no top-k).
    """

    needs_teacher = False

    def token_loss(self, outputs: StepOutputs, reduction: str, normalizer: float | Tensor | None) -> Tensor:
        labels = require_labels(outputs, "TokenCrossEntropy")
        return token_cross_entropy(outputs.student, labels, **self._options(reduction, normalizer))
