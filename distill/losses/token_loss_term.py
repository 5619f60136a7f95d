"""What every token-level language-model loss term shares: shift, mask, chunks, top-k and normalisation.

The terms read ``outputs.student`` / ``outputs.teacher`` as ``[B, T, V]`` logits
and ``outputs.labels`` as ``[B, T]`` token ids with -100 where no loss is
taken; the logits at ``t`` are paired with the token at ``t + 1``
(:mod:`distill.lm.tokens`). Their value is the summed per-token loss divided by

- ``outputs.token_normalizer`` when the step outputs carry one (set by the
  module for a per-token mean over the global batch, see
  :func:`~distill.losses.functional.token_losses.global_token_normalizer`), else
- this batch's number of loss-carrying tokens.
"""

from __future__ import annotations

import abc

from torch import Tensor

from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX, next_token_targets
from distill.losses.base import LossTerm, StepOutputs, check_temperature, require_labels, require_teacher
from distill.losses.functional.token_chunking import check_chunk_size


class TokenLossTerm(LossTerm):
    """Base of the token-level terms; subclasses implement :meth:`token_loss`.

    Args:
        weight: the term's weight in the total loss.
        chunk_size: loss-carrying tokens per chunk (the float32 softmax is built for one
            chunk at a time); ``None`` computes all at once. Values and gradients do not depend on it.
        ignore_index: the label value of positions without loss.
    """

    needs_labels = True  # the labels say which tokens carry loss

    def __init__(self, weight: float = 1.0, chunk_size: int | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__(weight)
        self.chunk_size = None if chunk_size is None else check_chunk_size(chunk_size)
        self.ignore_index = int(ignore_index)

    @abc.abstractmethod
    def token_loss(self, outputs: StepOutputs, reduction: str, normalizer: float | Tensor | None) -> Tensor:
        """The loss with a reduction of :mod:`distill.losses.functional.token_losses`."""

    def compute(self, outputs: StepOutputs) -> Tensor:
        return self.token_loss(outputs, "mean", getattr(outputs, "token_normalizer", None))

    def loss_sum(self, outputs: StepOutputs) -> tuple[Tensor, Tensor]:
        """``(sum over loss-carrying tokens, their number)``, for a module that normalises by itself."""
        _, mask = next_token_targets(require_labels(outputs, type(self).__name__), self.ignore_index)
        return self.token_loss(outputs, "sum", None), mask.sum()

    def per_sample(self, outputs: StepOutputs) -> Tensor:
        """The mean over each sequence's loss-carrying tokens, ``[B]`` (0 for a sequence without any)."""
        per_position = self.token_loss(outputs, "none", None)
        _, mask = next_token_targets(require_labels(outputs, type(self).__name__), self.ignore_index)
        return per_position.sum(dim=1) / mask.sum(dim=1).clamp_min(1)

    def _options(self, reduction: str, normalizer: float | Tensor | None) -> dict:
        return {
            "chunk_size": self.chunk_size,
            "normalizer": normalizer,
            "reduction": reduction,
            "ignore_index": self.ignore_index,
        }

    def extra_repr(self) -> str:
        return f"weight={self.weight}, chunk_size={self.chunk_size}"


class TokenDivergenceTerm(TokenLossTerm):
    """A token-level term that compares the student's next-token distributions with the teacher's.

    Args:
        temperature: softmax temperature T > 0 of both models.
        weight: the term's weight in the total loss.
        chunk_size: see :class:`TokenLossTerm`.
        top_k: keep the teacher's ``top_k`` most likely tokens plus the exact mass of the
            rest (a lower bound of the dense divergence, equal at k = V); ``None`` is dense.
        ignore_index: the label value of positions without loss.
    """

    compares_outputs = True

    def __init__(
        self,
        temperature: float = 1.0,
        weight: float = 1.0,
        chunk_size: int | None = None,
        top_k: int | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(weight, chunk_size, ignore_index)
        self.temperature = check_temperature(temperature, type(self).__name__)
        if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or int(top_k) < 1):
            raise DistillError(f"{type(self).__name__}: top_k must be a whole number >= 1 or null, got {top_k}")
        self.top_k = None if top_k is None else int(top_k)

    def _inputs(self, outputs: StepOutputs) -> tuple[Tensor, Tensor, Tensor]:
        name = type(self).__name__
        return outputs.student, require_teacher(outputs, name), require_labels(outputs, name)

    def _options(self, reduction: str, normalizer: float | Tensor | None) -> dict:
        return {**super()._options(reduction, normalizer), "top_k": self.top_k, "temperature": self.temperature}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, top_k={self.top_k}, {super().extra_repr()}"
