"""Similarity-preserving KD: Tung & Mori, "Similarity-Preserving Knowledge Distillation" (ICCV 2019)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.features import layer_pairs, read_features
from distill.losses.base import LossTerm, StepOutputs
from distill.losses.functional import similarity_preserving_loss


class SimilarityPreserving(LossTerm):
    """Match the student's batch similarity matrix to the teacher's, summed over layer pairs.

    Args:
        student_layer: the student's layer, or a list of them (any output shape ``[B, ...]``).
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        weight: the term's weight in the total loss (3000 in the paper).
    """

    needs_teacher = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        pairs = layer_pairs(student_layer, teacher_layer, "SimilarityPreserving")
        self.student_layers, self.teacher_layers = pairs

    def compute(self, outputs: StepOutputs) -> Tensor:
        owner = "SimilarityPreserving"
        students = read_features(outputs.student_features, self.student_layers, "student", owner)
        teachers = read_features(outputs.teacher_features, self.teacher_layers, "teacher", owner)
        return sum(similarity_preserving_loss(s, t) for s, t in zip(students, teachers))

    def extra_repr(self) -> str:
        layers = f"student_layer={list(self.student_layers)}, teacher_layer={list(self.teacher_layers)}"
        return f"{layers}, weight={self.weight}"
