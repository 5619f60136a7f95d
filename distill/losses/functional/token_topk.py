"""Sparse teacher distributions: the teacher's top-k tokens plus one bucket for the exact tail mass.

For a large vocabulary the teacher's distribution is kept as its ``k`` most
likely tokens and the rest of its mass in one extra "tail" bucket; the
student's distribution is coarsened the same way (its probabilities at the
teacher's ``k`` ids, plus its own tail). Any divergence of
:mod:`distill.losses.functional.token_divergences` on these ``k + 1`` buckets
is a lower bound of the divergence on the full vocabulary (coarsening never
increases an f-divergence) and equals it when ``k`` is the vocabulary size.
A cached teacher (top-k ids and log-probabilities, normalised with the full
log-normaliser) feeds :func:`topk_buckets` directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.errors import DistillError
from distill.losses.functional.token_divergences import LOG_ZERO


@dataclass
class TeacherTopK:
    """A teacher's next-token distributions as top-k buckets, ``[..., k]`` per position.

    ``log_probs`` are the log-probabilities of tokens ``ids`` under the full
    (temperature-scaled) softmax, i.e. logits minus the full log-normaliser.
    ``tail_log_mass`` is ``log(1 - sum(exp(log_probs)))`` per position; when
    ``None`` it is computed from ``log_probs``. ``temperature``: the softmax
    temperature the log-probabilities were taken at, when known (a cache's); a
    loss at another temperature is refused rather than silently mixed.
    """

    ids: Tensor
    log_probs: Tensor
    tail_log_mass: Tensor | None = None
    temperature: float | None = None


def teacher_topk(teacher_logits: Tensor, k: int, temperature: float = 1.0) -> TeacherTopK:
    """The top-k buckets of ``softmax(teacher_logits / temperature)`` over the last dimension, tail exact."""
    check_top_k(k, teacher_logits.shape[-1])
    log_p = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    log_probs, ids = log_p.topk(k, dim=-1)
    return TeacherTopK(ids, log_probs, _log_mass_outside(log_p, ids), temperature=float(temperature))


def topk_buckets(
    student_logits: Tensor,
    teacher_topk_ids: Tensor,
    teacher_topk_log_probs: Tensor,
    teacher_tail_log_mass: Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Teacher and student log-probabilities over the teacher's top-k ids plus a tail bucket.

    Args:
        student_logits: ``[N, V]`` student scores.
        teacher_topk_ids: ``[N, k]`` the teacher's top-k token ids.
        teacher_topk_log_probs: ``[N, k]`` their log-probabilities under the teacher's full
            softmax at ``temperature`` (logits minus the full log-normaliser).
        teacher_tail_log_mass: ``[N]`` log of the teacher's remaining mass; computed as
            ``log(1 - sum(exp(teacher_topk_log_probs)))`` when not given.
        temperature: the student's softmax temperature (the teacher's must be the same).

    Returns:
        ``(log_p, log_q)``, both ``[N, k + 1]``: the last column is the tail bucket.
    """
    ids = teacher_topk_ids.long()
    teacher_log_probs = teacher_topk_log_probs.detach().float()
    if teacher_tail_log_mass is None:
        teacher_tail_log_mass = tail_log_mass(teacher_log_probs)
    log_p = torch.cat([teacher_log_probs, teacher_tail_log_mass.detach().float().unsqueeze(-1)], dim=-1)
    log_q_full = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_q = torch.cat([log_q_full.gather(-1, ids), _log_mass_outside(log_q_full, ids).unsqueeze(-1)], dim=-1)
    return log_p, log_q


def check_top_k(k: int, vocabulary: int) -> int:
    if isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= vocabulary:
        raise DistillError(
            f"top_k must be a whole number from 1 to the vocabulary size {vocabulary}, got {k}; "
            "e.g. top_k=32, or top_k=null for the dense loss"
        )
    return int(k)


def _log_mass_outside(log_probs: Tensor, ids: Tensor) -> Tensor:
    """log of the probability mass on the tokens not in ``ids``: exact, LOG_ZERO when there are none."""
    # LOG_ZERO rather than -inf keeps logsumexp's gradient finite when every token is in ``ids``
    return log_probs.scatter(-1, ids, LOG_ZERO).logsumexp(dim=-1).clamp_min(LOG_ZERO)


def tail_log_mass(topk_log_probs: Tensor) -> Tensor:
    """``log(1 - sum(exp(topk_log_probs)))`` over the last dimension: the log-mass outside the top k."""
    return _log1mexp(topk_log_probs.detach().float().logsumexp(dim=-1))


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x <= 0, accurate near 0 and far from it."""
    x = x.clamp_max(0.0)
    near_zero = x > -0.6931471805599453
    small = torch.log(-torch.expm1(x.clamp_min(-0.6931471805599453)))
    large = torch.log1p(-torch.exp(x.clamp_max(-0.6931471805599453)))
    return torch.where(near_zero, small, large).clamp_min(LOG_ZERO)
