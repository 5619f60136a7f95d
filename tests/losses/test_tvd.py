import pytest
import torch

from distill.errors import DistillError
from distill.losses import TVD, StepOutputs


def test_compute_is_half_the_l1_distance_of_the_distributions():
    student, teacher = torch.randn(5, 4), torch.randn(5, 4)
    p, q = torch.softmax(teacher / 3.0, 1), torch.softmax(student / 3.0, 1)
    expected = torch.stack([0.5 * sum(abs(p[i, c] - q[i, c]) for c in range(4)) for i in range(5)]).mean()
    got = TVD(temperature=3.0).compute(StepOutputs(student=student, teacher=teacher))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_value_is_bounded_by_one():
    student = torch.tensor([[50.0, 0.0]])
    teacher = torch.tensor([[0.0, 50.0]])
    assert TVD().compute(StepOutputs(student=student, teacher=teacher)).item() == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs", [{"weight": -0.5}, {"temperature": 0.0}])
def test_constructor_rejects_bad_values(kwargs):
    with pytest.raises(DistillError):
        TVD(**kwargs)
