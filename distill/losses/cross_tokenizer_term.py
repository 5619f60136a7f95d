"""What the cross-tokenizer terms share: the alignment they read, the label mask, the reduction."""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX
from distill.losses.base import LossTerm, StepOutputs, check_temperature, require_teacher
from distill.losses.functional.token_chunking import check_chunk_size
from distill.losses.functional.token_cross_tokenizer import aligned_rows


class CrossTokenizerTerm(LossTerm):
    """Base of the terms between a student and a teacher with different tokenizers.

    They read ``outputs.student`` ``[B, T_s, V_s]`` and ``outputs.teacher`` ``[B, T_t, V_t]``
    logits and ``outputs.alignment`` ``[B, P, 3]``, the aligned pairs of a cross-tokenizer
    batch (see :mod:`distill.losses.functional.token_cross_tokenizer`); with labels, only
    pairs whose student token carries loss count. The value is the mean over the batch's
    counted pairs.

    Args:
        temperature: softmax temperature T > 0 of both models.
        weight: the term's weight in the total loss.
        chunk_size: pairs per chunk (the float32 softmax is built for one chunk at a time);
            ``None`` computes all at once.
        ignore_index: the label value of positions without loss.
    """

    def __init__(self, temperature: float = 1.0, weight: float = 1.0, chunk_size: int | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__(weight)
        self.temperature = check_temperature(temperature, type(self).__name__)
        self.chunk_size = None if chunk_size is None else check_chunk_size(chunk_size)
        self.ignore_index = int(ignore_index)

    @abc.abstractmethod
    def pair_loss(self, outputs: StepOutputs, reduction: str) -> Tensor:
        """The loss over the counted pairs with a reduction of :func:`~distill.losses.functional.token_cross_tokenizer.aligned_loss`."""

    exact_only: bool = False  #: the term counts only the pairs whose predicted tokens are the same string

    def compute(self, outputs: StepOutputs) -> Tensor:
        return self.pair_loss(outputs, "mean")

    def per_sample(self, outputs: StepOutputs) -> Tensor:
        """The mean over each sequence's counted pairs, ``[B]`` (0 for a sequence without any)."""
        values = self.pair_loss(outputs, "none")
        student, teacher, alignment = self._inputs(outputs)
        _, _, batch = aligned_rows(alignment, student.shape, teacher.shape, outputs.labels, self.ignore_index, self.exact_only)
        sums = torch.zeros(len(student), device=values.device).index_add_(0, batch, values.float())
        counts = torch.zeros(len(student), device=values.device).index_add_(0, batch, torch.ones_like(values, dtype=torch.float))
        return sums / counts.clamp_min(1)

    def _inputs(self, outputs: StepOutputs) -> tuple[Tensor, Tensor, Tensor]:
        name = type(self).__name__
        alignment = getattr(outputs, "alignment", None)
        if alignment is None:
            raise DistillError(
                f"{name} needs the alignment of the student's and the teacher's tokens, but the batch has none; "
                "give cross-tokenizer data (data.teacher_tokenizer=DIR or data.teacher_vocab_size=N)"
            )
        return outputs.student, require_teacher(outputs, name), alignment

    def _options(self, reduction: str) -> dict:
        return {"reduction": reduction, "chunk_size": self.chunk_size, "ignore_index": self.ignore_index}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, weight={self.weight}, chunk_size={self.chunk_size}"
