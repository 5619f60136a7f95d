import math

import pytest
import torch

from distill.errors import DistillError
from distill.losses import KD, StepOutputs


def hand_kd(student, teacher, temperature):
    """KD worked out sample by sample with plain Python floats."""
    total = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        s_exp = [math.exp(v / temperature) for v in s_row]
        t_exp = [math.exp(v / temperature) for v in t_row]
        q = [v / sum(s_exp) for v in s_exp]
        p = [v / sum(t_exp) for v in t_exp]
        total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    return total / len(student) * temperature**2


def test_kd_two_classes_by_hand():
    # T=1, teacher logits [0, ln 3] -> p = [1/4, 3/4]; student [0, 0] -> q = [1/2, 1/2]
    # KL = 1/4 ln(1/2) + 3/4 ln(3/2)
    student = torch.zeros(1, 2)
    teacher = torch.tensor([[0.0, math.log(3.0)]])
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    value = KD(temperature=1.0).compute(StepOutputs(student=student, teacher=teacher))
    assert value.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_matches_hand_computation(temperature):
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 7), torch.randn(5, 7) * 3
    value = KD(temperature=temperature).compute(StepOutputs(student=student, teacher=teacher))
    assert value.item() == pytest.approx(hand_kd(student, teacher, temperature), rel=1e-5)


def test_kd_is_zero_when_student_equals_teacher_and_positive_otherwise():
    logits = torch.randn(4, 10)
    assert KD().compute(StepOutputs(student=logits, teacher=logits)).item() == pytest.approx(0.0, abs=1e-6)
    assert KD().compute(StepOutputs(student=logits, teacher=logits.flip(1))).item() > 0


def test_kd_gradient_reaches_student_only():
    student = torch.randn(3, 4, requires_grad=True)
    teacher = torch.randn(3, 4)
    KD(temperature=2.0).compute(StepOutputs(student=student, teacher=teacher)).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_kd_rejects_bad_temperature(temperature):
    with pytest.raises(DistillError, match="temperature"):
        KD(temperature=temperature)


@pytest.mark.parametrize("weight", [-0.1, float("nan")])
def test_kd_rejects_bad_weight(weight):
    with pytest.raises(DistillError, match="weight"):
        KD(weight=weight)


def test_kd_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 10\).*\(2, 1000\)"):
        KD().compute(StepOutputs(student=torch.zeros(2, 10), teacher=torch.zeros(2, 1000)))
