"""Token-level losses for causal language models, as pure functions.

Each takes the full ``[B, T, V]`` logits and the batch's ``[B, T]`` labels
(-100 where no loss is taken), pairs the logits at position ``t`` with the
token at ``t + 1`` through :mod:`distill.lm.tokens`, and averages over the
loss-carrying tokens only. Options shared by all of them:

- ``chunk_size``: tokens per chunk (:mod:`~distill.losses.functional.token_chunking`);
  ``None`` computes all tokens at once. The value and gradient do not depend on it.
- ``top_k``: keep the teacher's ``k`` most likely tokens plus the exact tail mass
  (:mod:`~distill.losses.functional.token_topk`); ``None`` is the dense loss. The
  teacher may also be given already sparse, as a :class:`TeacherTopK` of ``[B, T, k]`` tensors.
- ``normalizer``: what the summed loss is divided by. ``None`` uses this batch's
  number of loss-carrying tokens. For a per-token mean over a global batch
  (gradient accumulation, several processes) pass :func:`global_token_normalizer`.
- ``reduction``: ``"mean"`` (the sum divided by the normalizer), ``"sum"``, or
  ``"none"`` (``[B, T-1]`` per position, 0 where no loss is taken; no chunked gradient).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX, check_logits_match_labels, loss_positions, next_token_targets
from distill.losses.functional import token_divergences as divergences
from distill.losses.functional._common import check_temperature
from distill.losses.functional.token_chunking import chunked_row_sum, chunked_row_values
from distill.losses.functional.token_topk import (
    TeacherTopK,
    check_top_k,
    tail_log_mass,
    teacher_topk,
    topk_buckets,
)

Teacher = Tensor | TeacherTopK
#: (teacher log-probs [n, K], student log-probs [n, K]) -> [n]
Divergence = Callable[[Tensor, Tensor], Tensor]
_REDUCTIONS = ("mean", "sum", "none")


def global_token_normalizer(
    global_loss_tokens: int | float | Tensor, accumulate_grad_batches: int = 1, world_size: int = 1
) -> float | Tensor:
    """The ``normalizer`` that makes every micro-batch's loss a share of one per-token mean over the global batch.

    Lightning divides each micro-batch's loss by ``accumulate_grad_batches`` and
    DDP averages gradients over ``world_size`` processes. A micro-batch whose
    summed token loss is ``S`` therefore has to return
    ``S * accumulate_grad_batches * world_size / N`` (``N``: the loss-carrying
    tokens of all micro-batches of the optimizer step on all processes) for the
    step's gradient to be that of ``sum(S) / N``. That is ``S / normalizer``
    with ``normalizer = N / (accumulate_grad_batches * world_size)``, the mean
    number of loss tokens per micro-batch and process.
    """
    if int(accumulate_grad_batches) < 1 or int(world_size) < 1:
        raise DistillError(
            f"accumulate_grad_batches and world_size must be >= 1, got {accumulate_grad_batches} and {world_size}"
        )
    return global_loss_tokens / (int(accumulate_grad_batches) * int(world_size))


def token_kl_loss(
    student_logits: Tensor, teacher: Teacher, labels: Tensor, temperature: float = 1.0, **options
) -> Tensor:
    r"""Forward KL per token, :math:`T^2\,\mathrm{KL}(p_T \| q_T)`, of Hinton et al., "Distilling the Knowledge in a Neural Network" (2015)."""
    return _divergence_loss(divergences.forward_kl, student_logits, teacher, labels, temperature, True, **options)


def token_reverse_kl_loss(
    student_logits: Tensor, teacher: Teacher, labels: Tensor, temperature: float = 1.0, **options
) -> Tensor:
    r"""Reverse KL per token, :math:`T^2\,\mathrm{KL}(q_T \| p_T)`, of MiniLLM (Gu et al., ICLR 2024)."""
    return _divergence_loss(divergences.reverse_kl, student_logits, teacher, labels, temperature, True, **options)


def token_jsd_loss(
    student_logits: Tensor, teacher: Teacher, labels: Tensor, beta: float = 0.5, temperature: float = 1.0, **options
) -> Tensor:
    r"""Generalised JSD(β) per token, times :math:`T^2`, of GKD (Agarwal et al., ICLR 2024); β = 0 forward KL, β = 1 reverse KL as in TRL."""
    divergence = functools.partial(divergences.generalized_jsd, beta=check_unit_interval(beta, "beta"))
    return _divergence_loss(divergence, student_logits, teacher, labels, temperature, True, **options)


def token_tvd_loss(
    student_logits: Tensor, teacher: Teacher, labels: Tensor, temperature: float = 1.0, **options
) -> Tensor:
    r"""Total variation distance per token (no :math:`T^2`, as :func:`~distill.losses.functional.tvd_loss`), of f-DISTILL (Wen et al., ACL 2023)."""
    return _divergence_loss(divergences.total_variation, student_logits, teacher, labels, temperature, False, **options)


def token_skew_kl_loss(
    student_logits: Tensor,
    teacher: Teacher,
    labels: Tensor,
    alpha: float = 0.1,
    temperature: float = 1.0,
    reverse: bool = False,
    **options,
) -> Tensor:
    r"""Skew KL (or skew reverse KL) per token, times :math:`T^2`, of DistiLLM (Ko et al., ICML 2024)."""
    alpha = check_unit_interval(alpha, "alpha", upper_open=True)
    divergence = functools.partial(divergences.skew_reverse_kl if reverse else divergences.skew_kl, alpha=alpha)
    return _divergence_loss(divergence, student_logits, teacher, labels, temperature, True, **options)


def token_cross_entropy(
    student_logits: Tensor,
    labels: Tensor,
    chunk_size: int | None = None,
    normalizer: float | Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Next-token cross-entropy on the data's tokens (the language-modelling loss), chunked and globally normalised."""
    check_logits_match_labels(student_logits, labels, "token_cross_entropy")
    return _reduce_rows(
        _cross_entropy_rows, student_logits, (), labels, chunk_size, normalizer, reduction, ignore_index
    )


def check_unit_interval(value: float, name: str, upper_open: bool = False) -> float:
    value = float(value)
    if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise DistillError(f"{name} must be in {interval}, got {value}")
    return value


def check_normalizer(normalizer: float | Tensor | None) -> float | Tensor | None:
    # a tensor is not checked: reading its value would wait for the device on every step
    if normalizer is not None and not isinstance(normalizer, Tensor) and not normalizer > 0:
        raise DistillError(
            f"normalizer must be > 0 (the number of loss-carrying tokens to divide by), got {normalizer}"
        )
    return normalizer


def _divergence_loss(
    divergence: Divergence,
    student_logits: Tensor,
    teacher: Teacher,
    labels: Tensor,
    temperature: float,
    times_t_squared: bool,
    *,
    top_k: int | None = None,
    chunk_size: int | None = None,
    normalizer: float | Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    temperature = check_temperature(temperature, "token loss")
    check_logits_match_labels(student_logits, labels, "token loss")
    teacher_parts = _teacher_parts(teacher, student_logits, top_k, temperature)
    row_loss = functools.partial(
        _divergence_rows, divergence=divergence, temperature=temperature, top_k=top_k,
        sparse_teacher=isinstance(teacher, TeacherTopK),
    )
    value = _reduce_rows(row_loss, student_logits, teacher_parts, labels, chunk_size, normalizer, reduction, ignore_index)
    return value * temperature**2 if times_t_squared else value


def _check_sparse_teacher(teacher: TeacherTopK, top_k: int | None, temperature: float) -> None:
    """A sparse teacher taken at another temperature, or with another k than the term's, is an error."""
    if teacher.temperature is not None and abs(teacher.temperature - temperature) > 1e-9 * max(1.0, temperature):
        raise DistillError(
            f"the teacher's top-k log-probabilities were taken at temperature {teacher.temperature}, the loss is at "
            f"{temperature}; give the term temperature={teacher.temperature} or rebuild the teacher's top-k at {temperature}"
        )
    if top_k is not None and top_k != teacher.ids.shape[-1]:
        raise DistillError(
            f"the teacher is given as its top {teacher.ids.shape[-1]} tokens but the term has top_k={top_k}; "
            f"give the term top_k={teacher.ids.shape[-1]}"
        )


def _teacher_parts(teacher: Teacher, student_logits: Tensor, top_k: int | None, temperature: float = 1.0) -> tuple[Tensor, ...]:
    """The teacher as tensors with one row per (sequence, position), like the flattened student logits."""
    rows = student_logits.shape[0] * student_logits.shape[1]
    if isinstance(teacher, TeacherTopK):
        _check_sparse_teacher(teacher, top_k, temperature)
        if teacher.ids.shape[:2] != student_logits.shape[:2] or teacher.ids.shape != teacher.log_probs.shape:
            raise DistillError(
                f"the teacher's top-k ids {tuple(teacher.ids.shape)} and log-probabilities "
                f"{tuple(teacher.log_probs.shape)} must both be [batch, sequence, k] like the student's "
                f"logits {tuple(student_logits.shape)}"
            )
        k = teacher.ids.shape[-1]
        tail = teacher.tail_log_mass
        tail = tail_log_mass(teacher.log_probs) if tail is None else tail
        return teacher.ids.reshape(rows, k), teacher.log_probs.reshape(rows, k), tail.reshape(rows)
    if teacher.shape != student_logits.shape:
        raise DistillError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher.shape)} differ in "
            "shape; the two models must share the vocabulary and see the same tokens"
        )
    if top_k is not None:
        check_top_k(top_k, teacher.shape[-1])
    return (teacher.reshape(rows, teacher.shape[-1]),)


def _divergence_rows(
    student_rows: Tensor,
    teacher_rows: Sequence[Tensor],
    targets: Tensor,
    *,
    divergence: Divergence,
    temperature: float,
    top_k: int | None,
    sparse_teacher: bool,
) -> Tensor:
    if sparse_teacher:
        ids, log_probs, tail = teacher_rows
        log_p, log_q = topk_buckets(student_rows, ids, log_probs, tail, temperature)
    elif top_k is not None:
        top = teacher_topk(teacher_rows[0], top_k, temperature)
        log_p, log_q = topk_buckets(student_rows, top.ids, top.log_probs, top.tail_log_mass, temperature)
    else:
        log_p = F.log_softmax(teacher_rows[0].float() / temperature, dim=-1)
        log_q = F.log_softmax(student_rows.float() / temperature, dim=-1)
    return divergence(log_p, log_q)


def _cross_entropy_rows(student_rows: Tensor, teacher_rows: Sequence[Tensor], targets: Tensor) -> Tensor:
    return F.cross_entropy(student_rows.float(), targets.long(), reduction="none")


def _reduce_rows(
    row_loss: Callable,
    student_logits: Tensor,
    teacher_parts: tuple[Tensor, ...],
    labels: Tensor,
    chunk_size: int | None,
    normalizer: float | Tensor | None,
    reduction: str,
    ignore_index: int,
) -> Tensor:
    if reduction not in _REDUCTIONS:
        raise DistillError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    normalizer = check_normalizer(normalizer)
    rows, targets = loss_positions(labels, ignore_index)
    student = student_logits.reshape(-1, student_logits.shape[-1])
    if reduction == "none":
        _, mask = next_token_targets(labels, ignore_index)
        values = chunked_row_values(row_loss, student, teacher_parts, rows, targets, chunk_size)
        per_position = torch.zeros(mask.shape, dtype=torch.float32, device=student.device)
        per_position[mask] = values
        return per_position
    total = chunked_row_sum(row_loss, student, teacher_parts, rows, targets, chunk_size)
    if reduction == "sum":
        return total
    if normalizer is None:
        normalizer = max(rows.numel(), 1)
    return total / normalizer
