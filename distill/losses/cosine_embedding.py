"""CosineEmbedding: the cosine loss of Sanh et al., "DistilBERT, a distilled version of BERT" (2019)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.functional import cosine_loss
from distill.losses.logit_term import LogitTerm


class CosineEmbedding(LogitTerm):
    """One minus the cosine similarity of student and teacher outputs.

    Aligns the direction of the output vectors and ignores their length.

    Args:
        weight: the term's weight in the total loss.
        dim: the dimension holding the vectors.
    """

    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        return cosine_loss(student, teacher, dim=self.dim, reduction=reduction)
