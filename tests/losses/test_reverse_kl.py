import pytest
import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.losses import ReverseKL, StepOutputs


def test_compute_is_kl_from_student_to_teacher_times_t_squared():
    student, teacher = torch.randn(4, 6), torch.randn(4, 6)
    # kl_div(input=log p_teacher, target=q_student) is KL(q_student || p_teacher)
    expected = F.kl_div(
        F.log_softmax(teacher / 2.0, dim=1), F.softmax(student / 2.0, dim=1), reduction="batchmean"
    ) * 4.0
    got = ReverseKL(temperature=2.0).compute(StepOutputs(student=student, teacher=teacher))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_flags():
    assert ReverseKL.compares_outputs and ReverseKL.needs_teacher and not ReverseKL.needs_labels


@pytest.mark.parametrize("kwargs", [{"weight": -1.0}, {"temperature": 0.0}, {"temperature": float("nan")}])
def test_constructor_rejects_bad_values(kwargs):
    with pytest.raises(DistillError):
        ReverseKL(**kwargs)


def test_missing_teacher_is_reported():
    with pytest.raises(DistillError, match="teacher"):
        ReverseKL().compute(StepOutputs(student=torch.randn(2, 3)))
