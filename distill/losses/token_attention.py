"""TokenAttention: MiniLM (Wang et al., NeurIPS 2020) self-attention transfer for causal LMs."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.features import layer_pairs, read_features
from distill.lm.tokens import IGNORE_INDEX
from distill.losses.base import LossTerm, StepOutputs, require_labels
from distill.losses.functional.token_attention import token_attention_kl


class TokenAttention(LossTerm):
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
    needs_teacher = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        weight: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(weight)
        self.student_layers, self.teacher_layers = layer_pairs(student_layer, teacher_layer, "TokenAttention")
        self.ignore_index = int(ignore_index)

    def compute(self, outputs: StepOutputs) -> Tensor:
        labels = require_labels(outputs, "TokenAttention")
        normalizer = getattr(outputs, "token_normalizer", None)
        students = read_features(outputs.student_features, self.student_layers, "student", "TokenAttention")
        teachers = read_features(outputs.teacher_features, self.teacher_layers, "teacher", "TokenAttention")
        return sum(token_attention_kl(s, t, labels, normalizer, self.ignore_index) for s, t in zip(students, teachers))

    def extra_repr(self) -> str:
        layers = f"student_layer={list(self.student_layers)}, teacher_layer={list(self.teacher_layers)}"
        return f"{layers}, weight={self.weight}"
