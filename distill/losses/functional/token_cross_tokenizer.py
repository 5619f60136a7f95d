"""Token losses between a student and a teacher with different tokenizers, at aligned positions.

The positions come from an alignment of the two tokenizations
(:mod:`distill.lm.alignment`): ``alignment`` is ``[B, P, 3]`` int64 rows
``(student position, teacher position, exact)``, padded with -1; at such a pair
both models' logits predict the next token after the same text, each over its own
vocabulary. ``exact`` is 1 where the two predicted tokens are the same string.
A pair counts where ``labels`` (the student's, optional) carry loss on the
student's predicted token. Reductions: ``"mean"`` over the counted pairs (0 when
there are none), ``"sum"``, or ``"none"`` (``[N]``, one value per counted pair).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX
from distill.losses.functional.token_chunking import chunked_row_sum
from distill.losses.functional.token_divergences import forward_kl

_REDUCTIONS = ("mean", "sum", "none")


def sorted_probability_distance(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    r"""ULD of Boizard et al., "Towards Cross-Tokenizer Distillation: the Universal Logit Distillation Loss" (2024).

    :math:`\sum_i |\mathrm{sort}(q)_i - \mathrm{sort}(p)_i|`, the L1 distance between the
    student's and the teacher's probability vectors at temperature T, each sorted in
    decreasing order, the shorter one padded with zeros: it needs no token mapping.

    Args:
        student_logits: ``[N, V_s]``.
        teacher_logits: ``[N, V_t]`` (any vocabulary size).
        temperature: softmax temperature of both.

    Returns:
        ``[N]`` in float32, between 0 and 2.
    """
    if student_logits.dim() != 2 or teacher_logits.dim() != 2 or len(student_logits) != len(teacher_logits):
        raise DistillError(
            f"expected student [N, V_s] and teacher [N, V_t] logits, got {tuple(student_logits.shape)} and "
            f"{tuple(teacher_logits.shape)}"
        )
    q = F.softmax(student_logits.float() / temperature, dim=-1).sort(dim=-1, descending=True).values
    p = F.softmax(teacher_logits.float() / temperature, dim=-1).sort(dim=-1, descending=True).values
    shared = min(q.shape[1], p.shape[1])
    # past the shorter vocabulary the padded side is 0, so the distance there is the longer side's mass
    return (q[:, :shared] - p[:, :shared]).abs().sum(-1) + q[:, shared:].sum(-1) + p[:, shared:].sum(-1)


def shared_vocabulary_kl(student_logits: Tensor, teacher_logits: Tensor, student_ids: Tensor, teacher_ids: Tensor,
                         temperature: float = 1.0) -> Tensor:
    r"""Forward KL on the shared sub-vocabulary, :math:`T^2\,\mathrm{KL}(\tilde p_T \| \tilde q_T)`.

    :math:`\tilde p, \tilde q`: the teacher's and the student's distributions restricted
    to the tokens both vocabularies share (``student_ids[i]`` is ``teacher_ids[i]``)
    and renormalised there: the exact-match part of cross-tokenizer distillation
    (as in the ULD paper's setting and TRL's GOLD, where tokens coincide).

    Returns:
        ``[N]`` in float32.
    """
    if student_ids.shape != teacher_ids.shape or student_ids.dim() != 1 or not len(student_ids):
        raise DistillError(
            "the shared vocabulary must be two equally long, non-empty lists of token ids; build it with "
            "distill.lm.shared_vocabulary.shared_vocabulary(student_tokenizer, teacher_tokenizer)"
        )
    log_q = F.log_softmax(student_logits.float().index_select(-1, student_ids) / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.float().index_select(-1, teacher_ids) / temperature, dim=-1)
    return forward_kl(log_p, log_q) * temperature**2


def aligned_rows(alignment: Tensor, student_shape: tuple[int, ...], teacher_shape: tuple[int, ...],
                 labels: Tensor | None = None, ignore_index: int = IGNORE_INDEX,
                 exact_only: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Rows of the flattened student and teacher logits at the counted pairs, and each pair's sequence.

    Returns:
        ``(student_rows, teacher_rows, batch)``, each ``[N]``: ``student_rows = b * T_s + t``
        into ``student.reshape(B * T_s, V_s)``, likewise for the teacher.
    """
    batch_size, s_len = student_shape[:2]
    t_len = teacher_shape[1]
    if alignment.dim() != 3 or alignment.shape[0] != batch_size or alignment.shape[2] != 3:
        raise DistillError(
            f"expected an alignment [batch, pairs, 3] for a batch of {batch_size}, got shape {tuple(alignment.shape)}; "
            "give the batches of a cross-tokenizer data module (data.teacher_tokenizer or data.teacher_vocab_size)"
        )
    s_pos, t_pos, exact = alignment.long().unbind(-1)
    keep = (s_pos >= 0) & (t_pos >= 0)
    if exact_only:
        keep &= exact > 0
    if bool(((s_pos >= s_len - 1) & keep).any()) or bool(((t_pos >= t_len) & keep).any()):
        raise DistillError(
            f"the alignment points past the sequences (student {s_len}, teacher {t_len} tokens); "
            "align the very tokenizations the models are given"
        )
    if labels is not None:
        if labels.shape != (batch_size, s_len):
            raise DistillError(f"labels {tuple(labels.shape)} do not match the student's logits {tuple(student_shape)}")
        targets = labels.gather(1, (s_pos + 1).clamp(0, s_len - 1))  # the token each student position predicts
        keep &= targets != ignore_index
    batch, pair = keep.nonzero(as_tuple=True)
    return batch * s_len + s_pos[batch, pair], batch * t_len + t_pos[batch, pair], batch


def aligned_loss(row_loss, student_logits: Tensor, teacher_logits: Tensor, alignment: Tensor,
                 labels: Tensor | None = None, reduction: str = "mean", chunk_size: int | None = None,
                 ignore_index: int = IGNORE_INDEX, exact_only: bool = False) -> Tensor:
    """``row_loss(student rows [n, V_s], teacher rows [n, V_t]) -> [n]`` over the counted pairs, reduced.

    ``student_logits`` ``[B, T_s, V_s]`` and ``teacher_logits`` ``[B, T_t, V_t]`` are the full
    logits; ``chunk_size`` pairs at a time (see :mod:`~distill.losses.functional.token_chunking`).
    """
    if reduction not in _REDUCTIONS:
        raise DistillError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got '{reduction}'")
    if student_logits.dim() != 3 or teacher_logits.dim() != 3 or len(student_logits) != len(teacher_logits):
        raise DistillError(
            f"expected student [B, T_s, V_s] and teacher [B, T_t, V_t] logits, got {tuple(student_logits.shape)} "
            f"and {tuple(teacher_logits.shape)}"
        )
    s_rows, t_rows, _ = aligned_rows(alignment, student_logits.shape, teacher_logits.shape, labels, ignore_index,
                                     exact_only)
    student = student_logits.reshape(-1, student_logits.shape[-1]).index_select(0, s_rows)
    teacher = teacher_logits.detach().reshape(-1, teacher_logits.shape[-1]).index_select(0, t_rows)
    if reduction == "none":
        return row_loss(student, teacher)
    rows = torch.arange(len(s_rows), device=student.device)
    total = chunked_row_sum(lambda s, t, _: row_loss(s, t[0]), student, (teacher,), rows, rows, chunk_size)
    return total if reduction == "sum" else total / max(len(s_rows), 1)


def token_uld_loss(student_logits: Tensor, teacher_logits: Tensor, alignment: Tensor, labels: Tensor | None = None,
                   temperature: float = 1.0, **options) -> Tensor:
    """:func:`sorted_probability_distance` at the aligned pairs (ULD, Boizard et al. 2024); options of :func:`aligned_loss`."""
    return aligned_loss(lambda s, t: sorted_probability_distance(s, t, temperature), student_logits, teacher_logits,
                        alignment, labels, **options)


def token_exact_match_loss(student_logits: Tensor, teacher_logits: Tensor, alignment: Tensor, student_ids: Tensor,
                           teacher_ids: Tensor, labels: Tensor | None = None, temperature: float = 1.0,
                           **options) -> Tensor:
    """:func:`shared_vocabulary_kl` at the aligned pairs whose predicted tokens are the same string; options of :func:`aligned_loss`."""
    student_ids, teacher_ids = student_ids.to(student_logits.device), teacher_ids.to(teacher_logits.device)
    return aligned_loss(lambda s, t: shared_vocabulary_kl(s, t, student_ids, teacher_ids, temperature),
                        student_logits, teacher_logits, alignment, labels, exact_only=True, **options)
