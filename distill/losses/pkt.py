"""PKT: Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer" (ECCV 2018)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.features import layer_pairs, read_features
from distill.losses.base import LossTerm, StepOutputs
from distill.losses.functional import pkt_loss


class PKT(LossTerm):
    """Match the distributions of cosine similarities between the student's embeddings to the teacher's.

    Args:
        student_layer: the student's embedding layer, or a list of them.
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        eps: the small constant of :func:`~distill.losses.functional.pkt_loss`.
        weight: the term's weight in the total loss.
    """

    needs_teacher = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        eps: float = 1e-7,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        self.student_layers, self.teacher_layers = layer_pairs(student_layer, teacher_layer, "PKT")
        self.eps = float(eps)

    def compute(self, outputs: StepOutputs) -> Tensor:
        students = read_features(outputs.student_features, self.student_layers, "student", "PKT")
        teachers = read_features(outputs.teacher_features, self.teacher_layers, "teacher", "PKT")
        return sum(pkt_loss(s, t, self.eps) for s, t in zip(students, teachers))

    def extra_repr(self) -> str:
        layers = f"student_layer={list(self.student_layers)}, teacher_layer={list(self.teacher_layers)}"
        return f"{layers}, weight={self.weight}"
