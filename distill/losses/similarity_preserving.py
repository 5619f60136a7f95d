"""Similarity-preserving KD: Tung & Mori, "Similarity-Preserving Knowledge Distillation" (ICCV 2019)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import similarity_preserving_loss


class SimilarityPreserving(FeatureTerm):
    """Match the student's batch similarity matrix to the teacher's, summed over layer pairs.

    Args:
        student_layer: the student's layer, or a list of them (any output shape ``[B, ...]``).
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        weight: the term's weight in the total loss (3000 in the paper).
    """

    def pair_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        return similarity_preserving_loss(student, teacher)
