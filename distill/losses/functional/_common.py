"""Input checks and reductions shared by the functional losses."""

from __future__ import annotations

import math

from torch import Tensor

from distill.errors import DistillError

_REDUCTIONS = ("mean", "sum", "none")


def _check_same_shape(student: Tensor, teacher: Tensor, fn: str) -> None:
    if student.shape != teacher.shape:
        raise ValueError(
            f"{fn}: student and teacher outputs must have the same shape, got "
            f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)}"
        )


#: what :func:`check_temperature` suggests by default
TYPICAL_TEMPERATURES = "typical values are 1 to 8 (e.g. temperature=4)"


def check_temperature(temperature: float, owner: str, typical: str = TYPICAL_TEMPERATURES) -> float:
    """The one temperature rule of :mod:`distill.losses`: a finite number > 0.

    A term checks its temperature once, when it is built; a pure function of
    :mod:`distill.losses.functional` checks the one it is called with. ``owner``
    (a term's or a function's name) starts the one-line error, ``typical`` ends it.
    """
    temperature = float(temperature)
    if not math.isfinite(temperature) or temperature <= 0:
        raise DistillError(f"{owner}: temperature must be a finite number > 0, got {temperature}; {typical}")
    return temperature


def _reduce(values: Tensor, reduction: str, mask: Tensor | None, fn: str) -> Tensor:
    """Reduce per-position values; ``mask`` (1 = count) excludes e.g. padding tokens."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if mask is not None:
        if mask.shape != values.shape:
            raise ValueError(
                f"{fn}: mask shape {tuple(mask.shape)} does not match the per-position "
                f"loss shape {tuple(values.shape)}"
            )
        mask = mask.to(values.dtype)
        values = values * mask
        if reduction == "mean":
            return values.sum() / mask.sum().clamp_min(1.0)
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def _kl_from_log_probs(log_p: Tensor, log_q: Tensor, dim: int) -> Tensor:
    """KL(p || q) summed over ``dim``, from log-probabilities (stable for tiny p)."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=dim)


def _log_or_neg_inf(x: float) -> float:
    # log(0) = -inf lets a zero mixture weight drop out of a logsumexp cleanly
    return math.log(x) if x > 0 else -math.inf
