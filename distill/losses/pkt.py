"""PKT: Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer" (ECCV 2018)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import pkt_loss


class PKT(FeatureTerm):
    """Match the distributions of cosine similarities between the student's embeddings to the teacher's.

    Args:
        student_layer: the student's embedding layer, or a list of them.
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        eps: the small constant of :func:`~distill.losses.functional.pkt_loss`.
        weight: the term's weight in the total loss.
    """

    repr_fields = ("eps",)

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        eps: float = 1e-7,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        self.eps = float(eps)

    def pair_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        return pkt_loss(student, teacher, self.eps)
