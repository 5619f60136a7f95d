"""TokenAttention: MiniLM (Wang et al., NeurIPS 2020) self-attention transfer for causal LMs."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.lm.tokens import IGNORE_INDEX
from distill.losses.base import StepOutputs, require_labels
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional.token_attention import token_attention_kl


class TokenAttention(FeatureTerm):
    """KL(teacher ‖ student) of the attention distributions of named attention modules, per head.

    On the loss-carrying query tokens only; several layer pairs are summed. The
    models must have the same number of heads in the paired layers, and return
    their attention probabilities (Hugging Face: ``attn_implementation=eager``;
    the probabilities are element ``[1]`` of an attention module's output). The
    division follows the other token terms: ``outputs.token_normalizer`` when
    set, else this batch's loss tokens.

    Args:
        student_layer: the student's attention module(s), e.g. ``transformer.h.1.attn[1]``.
        teacher_layer: the teacher's, matched by position; the student's by default.
        weight: the term's weight in the total loss.
        ignore_index: the label value of positions without loss.
    """

    needs_labels = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        weight: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        self.ignore_index = int(ignore_index)

    def compute(self, outputs: StepOutputs) -> Tensor:
        labels = require_labels(outputs, "TokenAttention")
        normalizer = getattr(outputs, "token_normalizer", None)
        return sum(token_attention_kl(s, t, labels, normalizer, self.ignore_index) for s, t in zip(*self.features(outputs)))
