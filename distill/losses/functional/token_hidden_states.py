"""Hidden-state distillation per token, as in TinyBERT (Jiao et al., Findings of EMNLP 2020)."""

from __future__ import annotations

from torch import Tensor

from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX, next_token_targets


def token_hidden_state_mse(
    student_hidden: Tensor,
    teacher_hidden: Tensor,
    labels: Tensor,
    normalizer: float | Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    r"""Mean squared error between (projected) student and teacher hidden states, over the loss-carrying tokens.

    .. math::
        \frac{1}{N} \sum_{(b, t)\,\in\,\text{loss}} \frac{1}{D} \lVert h^S_{b,t} - h^T_{b,t} \rVert^2

    The positions are those whose logits carry loss (:func:`distill.lm.tokens.next_token_targets`:
    position ``t`` where the token at ``t + 1`` is labelled), so prompts and padding add nothing.

    Args:
        student_hidden: ``[B, T, D]``, already mapped to the teacher's width.
        teacher_hidden: ``[B, T, D]``.
        labels: ``[B, T]`` with ``ignore_index`` where no loss is taken.
        normalizer: what the sum over tokens is divided by; ``None``: this batch's ``N``.
        ignore_index: the label value of positions without loss.
    """
    if student_hidden.shape != teacher_hidden.shape or student_hidden.dim() != 3 or labels.shape != student_hidden.shape[:2]:
        raise DistillError(
            f"token_hidden_state_mse: expected student and teacher hidden states [batch, sequence, width] and "
            f"labels [batch, sequence], got {tuple(student_hidden.shape)}, {tuple(teacher_hidden.shape)} and "
            f"{tuple(labels.shape)}; name layers that output hidden states (e.g. transformer.h.1)"
        )
    _, mask = next_token_targets(labels, ignore_index)
    difference = student_hidden[:, :-1][mask].float() - teacher_hidden[:, :-1][mask].detach().float()
    total = difference.pow(2).mean(dim=-1).sum()
    return total / (mask.sum().clamp_min(1) if normalizer is None else normalizer)
