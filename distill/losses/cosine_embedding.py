"""CosineEmbedding: the cosine loss of Sanh et al., "DistilBERT, a distilled version of BERT" (2019)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import LossTerm, StepOutputs, require_teacher
from distill.losses.functional import cosine_loss


class CosineEmbedding(LossTerm):
    """One minus the cosine similarity of student and teacher outputs.

    Aligns the direction of the output vectors and ignores their length.

    Args:
        weight: the term's weight in the total loss.
        dim: the dimension holding the vectors.
    """

    compares_outputs = True

    def __init__(self, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(weight)
        self.dim = dim

    def compute(self, outputs: StepOutputs) -> Tensor:
        return cosine_loss(outputs.student, require_teacher(outputs, "CosineEmbedding"), dim=self.dim)

    def per_sample(self, outputs: StepOutputs) -> Tensor:
        teacher = require_teacher(outputs, "CosineEmbedding")
        return cosine_loss(outputs.student, teacher, dim=self.dim, reduction="none")
