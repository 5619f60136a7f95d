"""TokenHiddenStates: TinyBERT (Jiao et al., Findings of EMNLP 2020) hidden-state distillation for causal LMs."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from distill.lm.tokens import IGNORE_INDEX
from distill.losses.base import StepOutputs, require_labels
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional.token_hidden_states import token_hidden_state_mse


class TokenHiddenStates(FeatureTerm):
    """MSE between the student's hidden states, projected to the teacher's width, and the teacher's.

    Per named layer pair, on the tokens that carry loss only. A linear projection
    per pair (none when the widths agree) is built from the first batch and
    trained with the student; it lives in this term, so it never enters the
    exported student. Several pairs are summed. The division follows the other
    token terms: ``outputs.token_normalizer`` when set, else this batch's loss tokens.

    Args:
        student_layer: the student's layer name(s), e.g. ``transformer.h.1`` (a GPT-2 block); a
            block that returns a tuple takes ``[0]`` for its hidden states.
        teacher_layer: the teacher's layer name(s), matched by position; the student's by default.
        weight: the term's weight in the total loss.
        ignore_index: the label value of positions without loss.
    """

    needs_labels = True
    needs_build = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        weight: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        self.projections = nn.ModuleList()
        self.ignore_index = int(ignore_index)

    def build(self, outputs: StepOutputs) -> None:
        self.projections = self.pair_adapters(outputs)

    def compute(self, outputs: StepOutputs) -> Tensor:
        self.require_pair_adapters(self.projections)
        labels = require_labels(outputs, "TokenHiddenStates")
        normalizer = getattr(outputs, "token_normalizer", None)
        students, teachers = self.features(outputs)
        return sum(
            token_hidden_state_mse(projection(s), t, labels, normalizer, self.ignore_index)
            for projection, s, t in zip(self.projections, students, teachers)
        )
