"""Self-attention distribution transfer per token, as in MiniLM (Wang et al., NeurIPS 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX, next_token_targets

_TINY = 1e-30


def token_attention_kl(
    student_attention: Tensor,
    teacher_attention: Tensor,
    labels: Tensor,
    normalizer: float | Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    r"""KL(teacher ‖ student) between attention distributions, per head, over the loss-carrying query tokens.

    .. math::
        \frac{1}{N} \sum_{(b, t)\,\in\,\text{loss}} \frac{1}{H} \sum_h
        \mathrm{KL}\big(A^T_{b,h,t,:} \,\|\, A^S_{b,h,t,:}\big)

    Each row :math:`A_{b,h,t,:}` is the attention of query ``t`` over the keys (a
    probability distribution; 0 on masked keys). The query positions are those whose
    logits carry loss (:func:`distill.lm.tokens.next_token_targets`).

    Args:
        student_attention: ``[B, H, T, T]`` attention probabilities.
        teacher_attention: ``[B, H, T, T]``, the same number of heads.
        labels: ``[B, T]`` with ``ignore_index`` where no loss is taken.
        normalizer: what the sum over tokens is divided by; ``None``: this batch's ``N``.
        ignore_index: the label value of positions without loss.
    """
    if (
        student_attention.dim() != 4
        or student_attention.shape != teacher_attention.shape
        or labels.shape != (student_attention.shape[0], student_attention.shape[2])
    ):
        raise DistillError(
            f"token_attention_kl: expected student and teacher attention [batch, heads, sequence, sequence] with "
            f"the same number of heads, and labels [batch, sequence], got {tuple(student_attention.shape)}, "
            f"{tuple(teacher_attention.shape)} and {tuple(labels.shape)}; name attention modules' probabilities "
            "(e.g. transformer.h.1.attn[1], with attn_implementation=eager) of models with equal head counts"
        )
    _, mask = next_token_targets(labels, ignore_index)
    # [N, H, T]: the rows of the loss-carrying queries
    student_rows = student_attention.float().transpose(1, 2)[:, :-1][mask]
    teacher_rows = teacher_attention.detach().float().transpose(1, 2)[:, :-1][mask]
    per_head = (torch.xlogy(teacher_rows, teacher_rows) - teacher_rows * student_rows.clamp_min(_TINY).log()).sum(-1)
    total = per_head.mean(dim=-1).sum()
    return total / (mask.sum().clamp_min(1) if normalizer is None else normalizer)
