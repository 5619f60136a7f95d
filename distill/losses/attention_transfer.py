"""Attention transfer: Zagoruyko & Komodakis, "Paying More Attention to Attention" (ICLR 2017)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import attention_transfer_loss


class AttentionTransfer(FeatureTerm):
    """Match the student's spatial attention maps to the teacher's, summed over layer pairs.

    Channel counts may differ; features of different spatial sizes are pooled to
    the smaller one before the maps are formed (see
    :func:`~distill.losses.functional.attention_transfer_loss`).

    Args:
        student_layer: a student layer with ``[B, C, H, W]`` outputs, or a list of them.
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        p: the exponent of the activations (2 in the paper).
        weight: the term's weight in the total loss (the paper's β = 1000).
    """

    repr_fields = ("p",)

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        p: float = 2.0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        self.p = float(p)

    def pair_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        return attention_transfer_loss(student, teacher, self.p)
