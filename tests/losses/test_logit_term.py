"""The logit-family base: compute and per_sample from one function, the temperature checked once, the repr."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.losses import KD, ReverseKL
from distill.losses.base import StepOutputs
from distill.losses.logit_term import LogitTerm, SoftenedLogitTerm


class AbsoluteGap(LogitTerm):
    """A made-up term: the mean absolute difference of the outputs along dim."""

    def loss(self, student, teacher, reduction):
        values = (student - teacher).abs().mean(self.dim)
        return values.mean() if reduction == "mean" else values


def test_compute_is_the_mean_and_per_sample_the_values_of_the_one_function():
    student, teacher = torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    term = AbsoluteGap(weight=0.5)
    outputs = StepOutputs(student=student, teacher=teacher)
    assert term.per_sample(outputs).tolist() == [2.0, 2.0]  # (1 + 3) / 2 and (2 + 2) / 2
    assert term.compute(outputs).item() == 2.0
    assert term.compares_outputs and term.needs_teacher
    with pytest.raises(DistillError, match="AbsoluteGap needs the teacher's outputs"):
        term.compute(StepOutputs(student=student))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_the_temperature_is_checked_once_with_the_class_name(bad):
    for cls in (KD, ReverseKL):
        with pytest.raises(DistillError, match=rf"^{cls.__name__}: temperature must be a finite number > 0"):
            cls(temperature=bad)


def test_repr_shows_the_settings_then_the_weight():
    assert repr(KD(2.0, weight=0.5)) == "KD(temperature=2.0, weight=0.5)"

    class Plain(SoftenedLogitTerm):
        def loss(self, student, teacher, reduction):
            return (student - teacher).sum()

    assert Plain().temperature == 1.0 and "temperature=1.0, weight=1.0" in repr(Plain())
