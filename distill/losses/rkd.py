"""RKD: Park et al., "Relational Knowledge Distillation" (CVPR 2019)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import rkd_loss


class RKD(FeatureTerm):
    """Match the distances and angles between the student's embeddings to the teacher's.

    Usually on the penultimate embedding (e.g. layer ``avgpool`` of torchvision ResNets).

    Args:
        student_layer: the student's embedding layer, or a list of them.
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        distance_weight: weight of the distance part (25 in the paper).
        angle_weight: weight of the angle part (50 in the paper).
        weight: the term's weight in the total loss.
    """

    repr_fields = ("distance_weight", "angle_weight")

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        distance_weight: float = 25.0,
        angle_weight: float = 50.0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        self.distance_weight = float(distance_weight)
        self.angle_weight = float(angle_weight)

    def pair_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        return rkd_loss(student, teacher, self.distance_weight, self.angle_weight)
