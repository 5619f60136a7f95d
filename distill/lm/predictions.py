"""Next-token predictions of a causal LM where the loss is taken: the module's token agreement and accuracy."""

from __future__ import annotations

from torch import Tensor

from distill.lm.tokens import next_token_targets, shift_logits


def is_token_output(logits: Tensor, labels: Tensor | None) -> bool:
    """Whether ``logits`` are a language model's ``[B, T, V]`` (with ``[B, T]`` labels, when there are labels)."""
    return logits.dim() == 3 and (labels is None or (labels.dim() == 2 and labels.shape == logits.shape[:2]))


def next_token_predictions(student: Tensor, teacher: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """The student's and the teacher's top-1 next token, and the true one, at every loss-carrying position (``[N]``).

    Positions follow :func:`distill.lm.tokens.next_token_targets` (logits at ``t``
    predict token ``t + 1``); without labels every position but the last counts.
    Vocabularies may differ in size (padding rows): only the token ids are compared.
    """
    student_pred, teacher_pred = shift_logits(student).argmax(-1), shift_logits(teacher).argmax(-1)
    if labels is None:
        return student_pred.flatten(), teacher_pred.flatten(), None
    targets, mask = next_token_targets(labels)
    return student_pred[mask], teacher_pred[mask], targets[mask]
