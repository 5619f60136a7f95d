"""TokenExactMatchKL: forward KL on the shared sub-vocabulary where both tokenizers predict the same token string."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX
from distill.losses.base import StepOutputs
from distill.losses.cross_tokenizer_term import CrossTokenizerTerm
from distill.losses.functional.token_cross_tokenizer import token_exact_match_loss


class TokenExactMatchKL(CrossTokenizerTerm):
    """T² KL(teacher || student) on the tokens both vocabularies share, renormalised there.

    Taken at the aligned pairs whose two predicted tokens are the same string
    (``exact`` in the alignment); complements :class:`~distill.losses.TokenULD`,
    which compares the whole distributions without a mapping.

    Args:
        shared_vocabulary: ``(student_ids, teacher_ids)`` of the tokens that are the same string
            in both vocabularies (:func:`distill.lm.shared_vocabulary.shared_vocabulary`); ``None``:
            set later with :meth:`set_shared_vocabulary` (the LM job does, from the data's tokenizers).
        Other arguments as :class:`~distill.losses.cross_tokenizer_term.CrossTokenizerTerm`.
    """

    exact_only = True

    def __init__(self, temperature: float = 1.0, weight: float = 1.0, chunk_size: int | None = None,
                 ignore_index: int = IGNORE_INDEX, shared_vocabulary: tuple[Sequence[int], Sequence[int]] | None = None) -> None:
        super().__init__(temperature, weight, chunk_size, ignore_index)
        self.register_buffer("student_ids", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("teacher_ids", torch.zeros(0, dtype=torch.long), persistent=False)
        self._checked_sizes: set[tuple[int, int]] = set()
        if shared_vocabulary is not None:
            self.set_shared_vocabulary(*shared_vocabulary)

    def set_shared_vocabulary(self, student_ids: Sequence[int] | Tensor, teacher_ids: Sequence[int] | Tensor) -> None:
        """The tokens the two vocabularies share: ``student_ids[i]`` is the same string as ``teacher_ids[i]``."""
        student_ids, teacher_ids = torch.as_tensor(student_ids, dtype=torch.long), torch.as_tensor(teacher_ids, dtype=torch.long)
        if student_ids.dim() != 1 or student_ids.shape != teacher_ids.shape or not len(student_ids):
            raise DistillError(
                f"{type(self).__name__}: the shared vocabulary must be two equally long, non-empty id lists, got "
                f"{tuple(student_ids.shape)} and {tuple(teacher_ids.shape)}; the two tokenizers share no token string"
            )
        self._checked_sizes = set()
        self.student_ids, self.teacher_ids = student_ids.to(self.student_ids.device), teacher_ids.to(self.teacher_ids.device)

    def pair_loss(self, outputs: StepOutputs, reduction: str) -> Tensor:
        if not len(self.student_ids):
            raise DistillError(
                f"{type(self).__name__} has no shared vocabulary; pass shared_vocabulary=(student_ids, teacher_ids) "
                "or call set_shared_vocabulary (distill.lm.shared_vocabulary.shared_vocabulary(student_tok, teacher_tok))"
            )
        student, teacher, alignment = self._inputs(outputs)
        if (student.shape[-1], teacher.shape[-1]) not in self._checked_sizes and (
                int(self.student_ids.max()) >= student.shape[-1] or int(self.teacher_ids.max()) >= teacher.shape[-1]):
            raise DistillError(
                f"{type(self).__name__}: the shared vocabulary names token ids past the models' vocabularies "
                f"({student.shape[-1]} and {teacher.shape[-1]}); build it from the models' own tokenizers"
            )
        self._checked_sizes.add((student.shape[-1], teacher.shape[-1]))  # checked once per size: no host sync per step
        return token_exact_match_loss(student, teacher, alignment, self.student_ids, self.teacher_ids, outputs.labels,
                                      self.temperature, **self._options(reduction))

    def extra_repr(self) -> str:
        return f"shared_tokens={len(self.student_ids)}, {super().extra_repr()}"
