"""Attention transfer: Zagoruyko & Komodakis, "Paying More Attention to Attention" (ICLR 2017)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.features import layer_pairs, read_features
from distill.losses.base import LossTerm, StepOutputs
from distill.losses.functional import attention_transfer_loss


class AttentionTransfer(LossTerm):
    """Match the student's spatial attention maps to the teacher's, summed over layer pairs.

    Channel counts may differ; maps of different sizes are pooled to the
    smaller one (see :func:`~distill.losses.functional.attention_transfer_loss`).

    Args:
        student_layer: a student layer with ``[B, C, H, W]`` outputs, or a list of them.
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        p: the exponent of the activations (2 in the paper).
        weight: the term's weight in the total loss (the paper's β = 1000).
    """

    needs_teacher = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        p: float = 2.0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        self.student_layers, self.teacher_layers = layer_pairs(student_layer, teacher_layer, "AttentionTransfer")
        self.p = float(p)

    def compute(self, outputs: StepOutputs) -> Tensor:
        students = read_features(outputs.student_features, self.student_layers, "student", "AttentionTransfer")
        teachers = read_features(outputs.teacher_features, self.teacher_layers, "teacher", "AttentionTransfer")
        return sum(attention_transfer_loss(s, t, self.p) for s, t in zip(students, teachers))

    def extra_repr(self) -> str:
        return (
            f"student_layer={list(self.student_layers)}, teacher_layer={list(self.teacher_layers)}, "
            f"p={self.p}, weight={self.weight}"
        )
