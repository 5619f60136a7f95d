"""TokenULD: Boizard et al., "Towards Cross-Tokenizer Distillation: the Universal Logit Distillation Loss" (2024)."""

from __future__ import annotations

from torch import Tensor

from distill.losses.base import StepOutputs
from distill.losses.cross_tokenizer_term import CrossTokenizerTerm
from distill.losses.functional.token_cross_tokenizer import token_uld_loss


class TokenULD(CrossTokenizerTerm):
    """L1 distance between the sorted next-token probabilities of student and teacher at aligned positions.

    Needs no mapping between the vocabularies (the shorter sorted vector is padded
    with zeros). Arguments as :class:`~distill.losses.cross_tokenizer_term.CrossTokenizerTerm`.
    """

    def pair_loss(self, outputs: StepOutputs, reduction: str) -> Tensor:
        student, teacher, alignment = self._inputs(outputs)
        return token_uld_loss(student, teacher, alignment, outputs.labels, self.temperature, **self._options(reduction))
