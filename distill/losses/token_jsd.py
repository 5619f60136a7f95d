"""TokenJSD: GKD (Agarwal et al., "On-Policy Distillation of Language Models", ICLR 2024), per token."""

from __future__ import annotations

from torch import Tensor

from distill.lm.tokens import IGNORE_INDEX
from distill.losses.base import StepOutputs
from distill.losses.functional.token_losses import check_unit_interval, token_jsd_loss
from distill.losses.token_loss_term import TokenDivergenceTerm


class TokenJSD(TokenDivergenceTerm):
    """Generalised JSD(β) of the next-token distributions at temperature T, times T².

    With the mixture m = β p + (1 - β) q: β KL(p || m) + (1 - β) KL(q || m).
    As in TRL's ``GKDTrainer``, β = 0 is the forward KL(p || q) and β = 1 the
    reverse KL(q || p) (the mixture formula itself vanishes at both ends);
    0.5 is the symmetric Jensen-Shannon divergence. At T = 1 the value is
    TRL's ``generalized_jsd_loss``; TRL does not multiply by T².

    Args:
        beta: in [0, 1]. Other arguments as :class:`~distill.losses.token_loss_term.TokenDivergenceTerm`.
    """

    def __init__(
        self,
        beta: float = 0.5,
        temperature: float = 1.0,
        weight: float = 1.0,
        chunk_size: int | None = None,
        top_k: int | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(temperature, weight, chunk_size, top_k, ignore_index)
        self.beta = check_unit_interval(beta, "TokenJSD: beta")

    def token_loss(self, outputs: StepOutputs, reduction: str, normalizer: float | Tensor | None) -> Tensor:
        return token_jsd_loss(*self._inputs(outputs), beta=self.beta, **self._options(reduction, normalizer))

    def extra_repr(self) -> str:
        return f"beta={self.beta}, {super().extra_repr()}"
