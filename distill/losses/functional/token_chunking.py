"""Sums of a per-token loss over the loss-carrying tokens, a chunk of tokens at a time.

A language model's float32 softmax over ``B * T`` positions and a vocabulary
of ``V`` is often the largest tensor of a training step. :func:`chunked_row_sum`
never builds it: it takes ``chunk_size`` rows at a time, computes the loss and
its gradient with respect to those rows of the student's logits at once, keeps
only the gradient (in the logits' own dtype), and frees the chunk before the
next one. The backward pass then just scales that gradient, so nothing is
recomputed. Peak extra memory is one chunk's float32 ``chunk_size x V``
intermediates plus a gradient buffer the size of the logits (which backward
needs anyway). The teacher side is a fixed target and gets no gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from distill.errors import DistillError

#: (student rows [n, V], teacher rows (each [n, ...]), next-token targets [n]) -> per-row losses [n]
RowLoss = Callable[[Tensor, Sequence[Tensor], Tensor], Tensor]


def chunked_row_sum(
    row_loss: RowLoss,
    student: Tensor,
    teacher: Sequence[Tensor],
    rows: Tensor,
    targets: Tensor,
    chunk_size: int | None = None,
) -> Tensor:
    """``row_loss`` summed over ``rows`` of ``student`` (and of each ``teacher`` tensor), in chunks.

    Args:
        row_loss: the per-row loss (see :data:`RowLoss`).
        student: ``[R, V]`` the student's logits, flattened over batch and sequence.
        teacher: tensors with ``R`` rows each (teacher logits, or top-k ids and
            log-probabilities); treated as constants.
        rows: ``[N]`` the rows that carry loss.
        targets: ``[N]`` each row's next token.
        chunk_size: rows per chunk; ``None`` computes all rows at once with plain autograd.

    Returns:
        A float32 scalar, differentiable with respect to ``student``.
    """
    teacher = tuple(t.detach() for t in teacher)
    if chunk_size is None:
        return _chunk_sum(row_loss, student, teacher, rows, targets).float()
    chunk_size = check_chunk_size(chunk_size)
    if torch.is_grad_enabled() and student.requires_grad:
        return _ChunkedRowSum.apply(row_loss, student, teacher, rows, targets, chunk_size)
    total = student.new_zeros((), dtype=torch.float32)
    for start in range(0, rows.numel(), chunk_size):
        chunk = slice(start, start + chunk_size)
        total = total + _chunk_sum(row_loss, student, teacher, rows[chunk], targets[chunk])
    return total


def chunked_row_values(
    row_loss: RowLoss,
    student: Tensor,
    teacher: Sequence[Tensor],
    rows: Tensor,
    targets: Tensor,
    chunk_size: int | None = None,
) -> Tensor:
    """The per-row losses ``[N]`` without a gradient, computed ``chunk_size`` rows at a time."""
    teacher = tuple(t.detach() for t in teacher)
    step = rows.numel() if chunk_size is None else check_chunk_size(chunk_size)
    with torch.no_grad():
        values = [
            row_loss(*_select(student, teacher, rows[start : start + step]), targets[start : start + step]).float()
            for start in range(0, rows.numel(), max(step, 1))
        ]
    return torch.cat(values) if values else student.new_zeros(0, dtype=torch.float32)


def check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or int(chunk_size) < 1:
        raise DistillError(
            f"chunk_size must be a whole number of tokens >= 1, got {chunk_size}; "
            "e.g. chunk_size=1024, or chunk_size=null to compute all tokens at once"
        )
    return int(chunk_size)


def _select(student: Tensor, teacher: Sequence[Tensor], rows: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
    return student.index_select(0, rows), tuple(t.index_select(0, rows) for t in teacher)


def _chunk_sum(row_loss: RowLoss, student: Tensor, teacher: Sequence[Tensor], rows: Tensor, targets: Tensor) -> Tensor:
    student_rows, teacher_rows = _select(student, teacher, rows)
    return row_loss(student_rows, teacher_rows, targets).float().sum()


class _ChunkedRowSum(torch.autograd.Function):
    """The loss sum in the forward pass; its gradient is taken chunk by chunk there as well."""

    @staticmethod
    def forward(ctx, row_loss, student, teacher, rows, targets, chunk_size):  # noqa: ANN001, ANN205
        grad = torch.zeros_like(student)
        total = student.new_zeros((), dtype=torch.float32)
        for start in range(0, rows.numel(), chunk_size):
            chunk_rows = rows[start : start + chunk_size]
            student_rows, teacher_rows = _select(student.detach(), teacher, chunk_rows)
            student_rows.requires_grad_(True)
            with torch.enable_grad():
                value = row_loss(student_rows, teacher_rows, targets[start : start + chunk_size]).float().sum()
            (chunk_grad,) = torch.autograd.grad(value, student_rows)
            grad.index_copy_(0, chunk_rows, chunk_grad.to(grad.dtype))
            total += value.detach()
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, grad_total):  # noqa: ANN001, ANN205
        (grad,) = ctx.saved_tensors
        return None, grad * grad_total.to(grad.dtype), None, None, None, None
