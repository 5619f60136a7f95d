"""TokenSkewKL: DistiLLM (Ko et al., "DistiLLM: Towards Streamlined Distillation for LLMs", ICML 2024)."""

from __future__ import annotations

from torch import Tensor

from distill.lm.tokens import IGNORE_INDEX
from distill.losses.base import StepOutputs
from distill.losses.functional.token_losses import check_unit_interval, token_skew_kl_loss
from distill.losses.token_loss_term import TokenDivergenceTerm


class TokenSkewKL(TokenDivergenceTerm):
    """α-skew KL(p || α p + (1 - α) q) of the next-token distributions at temperature T, times T².

    Mixing some of the teacher into the student's side keeps the divergence
    and its gradient bounded where the student gives a teacher token almost no
    mass; α = 0 is the forward KL. ``reverse=True`` gives the skew reverse KL
    KL(q || (1 - α) p + α q) instead.

    Args:
        alpha: the skew, in [0, 1) (DistiLLM uses 0.1).
        reverse: skew the reverse KL instead of the forward KL.
        Other arguments as :class:`~distill.losses.token_loss_term.TokenDivergenceTerm`.
    """

    def __init__(
        self,
        alpha: float = 0.1,
        reverse: bool = False,
        temperature: float = 1.0,
        weight: float = 1.0,
        chunk_size: int | None = None,
        top_k: int | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(temperature, weight, chunk_size, top_k, ignore_index)
        self.alpha = check_unit_interval(alpha, "TokenSkewKL: alpha", upper_open=True)
        self.reverse = bool(reverse)

    def token_loss(self, outputs: StepOutputs, reduction: str, normalizer: float | Tensor | None) -> Tensor:
        return token_skew_kl_loss(
            *self._inputs(outputs), alpha=self.alpha, reverse=self.reverse, **self._options(reduction, normalizer)
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, reverse={self.reverse}, {super().extra_repr()}"
