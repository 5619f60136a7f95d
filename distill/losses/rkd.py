"""RKD: Park et al., "Relational Knowledge Distillation" (CVPR 2019)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.features import layer_pairs, read_features
from distill.losses.base import LossTerm, StepOutputs
from distill.losses.functional import rkd_loss


class RKD(LossTerm):
    """Match the distances and angles between the student's embeddings to the teacher's.

    Usually on the penultimate embedding (e.g. layer ``avgpool`` of torchvision ResNets).

    Args:
        student_layer: the student's embedding layer, or a list of them.
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        distance_weight: weight of the distance part (25 in the paper).
        angle_weight: weight of the angle part (50 in the paper).
        weight: the term's weight in the total loss.
    """

    needs_teacher = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        distance_weight: float = 25.0,
        angle_weight: float = 50.0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        self.student_layers, self.teacher_layers = layer_pairs(student_layer, teacher_layer, "RKD")
        self.distance_weight = float(distance_weight)
        self.angle_weight = float(angle_weight)

    def compute(self, outputs: StepOutputs) -> Tensor:
        students = read_features(outputs.student_features, self.student_layers, "student", "RKD")
        teachers = read_features(outputs.teacher_features, self.teacher_layers, "teacher", "RKD")
        return sum(
            rkd_loss(s, t, self.distance_weight, self.angle_weight) for s, t in zip(students, teachers)
        )

    def extra_repr(self) -> str:
        return (
            f"student_layer={list(self.student_layers)}, teacher_layer={list(self.teacher_layers)}, "
            f"distance_weight={self.distance_weight}, angle_weight={self.angle_weight}, weight={self.weight}"
        )
