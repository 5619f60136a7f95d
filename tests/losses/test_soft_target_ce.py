import pytest
import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.losses import SoftTargetCE, StepOutputs


def test_compute_is_soft_target_cross_entropy_times_t_squared():
    student, teacher = torch.randn(4, 5), torch.randn(4, 5)
    # torch's cross_entropy accepts class probabilities as the target
    expected = F.cross_entropy(student / 4.0, F.softmax(teacher / 4.0, dim=1)) * 16.0
    got = SoftTargetCE(temperature=4.0).compute(StepOutputs(student=student, teacher=teacher))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_equals_that_of_kl():
    student = torch.randn(3, 5, requires_grad=True)
    teacher = torch.randn(3, 5)
    SoftTargetCE(temperature=2.0).compute(StepOutputs(student=student, teacher=teacher)).backward()
    # d/ds of T^2 * KL(p || softmax(s/T)) averaged over the batch is T * (q - p) / B
    p, q = F.softmax(teacher / 2.0, 1), F.softmax(student.detach() / 2.0, 1)
    torch.testing.assert_close(student.grad, 2.0 * (q - p) / 3)


def test_compares_outputs():
    assert SoftTargetCE.compares_outputs and SoftTargetCE.needs_teacher


@pytest.mark.parametrize("kwargs", [{"weight": -1.0}, {"temperature": -4.0}])
def test_constructor_rejects_bad_values(kwargs):
    with pytest.raises(DistillError):
        SoftTargetCE(**kwargs)
