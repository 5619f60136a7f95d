"""CC: Peng et al., "Correlation Congruence for Knowledge Distillation" (ICCV 2019)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from distill.errors import DistillError
from distill.losses._maps import require_built
from distill.losses.base import StepOutputs
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import cc_loss


class CC(FeatureTerm):
    """Match the student's sample-to-sample correlation matrix to the teacher's.

    Features (flattened; usually the pooled penultimate layer, ``avgpool`` of
    torchvision ResNets) go through linear embedding heads; the ``[B, B]``
    correlation matrices of the L2-normalised embeddings under a Gaussian RBF
    kernel, Taylor-expanded to order 2 with :math:`\\gamma = 0.4`, are compared
    by their mean squared error (:func:`~distill.losses.functional.cc_loss`).

    The student's head is always there and trained with the student. The
    teacher's is optional (``teacher_head``): without it the teacher's
    correlations come from its features directly (the matrices are ``[B, B]``
    whatever the widths). RepDistiller and torchdistill train a teacher head
    too; with both heads trainable, both can collapse to a constant embedding,
    which makes the loss zero without transferring anything, hence the
    default ``False``.

    Args:
        student_layer: the student's layer (one).
        teacher_layer: the teacher's layer; the student's name by default.
        embed_dim: the embedding size (128).
        gamma: the RBF kernel's :math:`\\gamma` (0.4).
        order: the Taylor expansion order (2).
        teacher_head: also embed the teacher's features with a trained linear head.
        weight: the term's weight in the total loss.
    """

    feature_form = "flat"
    one_layer_only = True
    repr_fields = ("embed_dim", "gamma", "order", "teacher_head=use_teacher_head")
    needs_build = True

    def __init__(
        self,
        student_layer: str = "avgpool",
        teacher_layer: str | None = None,
        embed_dim: int = 128,
        gamma: float = 0.4,
        order: int = 2,
        teacher_head: bool = False,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        if isinstance(embed_dim, bool) or int(embed_dim) != embed_dim or embed_dim < 1:
            raise DistillError(f"CC: embed_dim must be a whole number >= 1, got {embed_dim!r}")
        if not (math.isfinite(float(gamma)) and float(gamma) > 0) or int(order) != order or order < 0:
            raise DistillError(f"CC: gamma must be > 0 and order a whole number >= 0, got {gamma} and {order}")
        self.embed_dim, self.gamma, self.order = int(embed_dim), float(gamma), int(order)
        self.use_teacher_head = bool(teacher_head)
        self.student_head: nn.Module | None = None
        self.teacher_head: nn.Module | None = None

    def build(self, outputs: StepOutputs) -> None:
        (student,), (teacher,) = self.features(outputs)
        self.student_head = nn.Linear(student.shape[1], self.embed_dim).to(student.device)
        if self.use_teacher_head:
            self.teacher_head = nn.Linear(teacher.shape[1], self.embed_dim).to(teacher.device)

    def compute(self, outputs: StepOutputs) -> Tensor:
        require_built(self.student_head is not None, "CC")
        (student,), (teacher,) = self.features(outputs)
        if self.teacher_head is not None:
            teacher = self.teacher_head(teacher.float())
        return cc_loss(self.student_head(student.float()), teacher, self.gamma, self.order)
