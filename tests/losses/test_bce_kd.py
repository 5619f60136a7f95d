import pytest
import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.losses import BCEKD, StepOutputs


def test_compute_is_bce_against_the_teachers_sigmoid():
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    p, q = torch.sigmoid(teacher / 2.0), torch.sigmoid(student / 2.0)
    expected = F.binary_cross_entropy(q, p) * 4.0
    got = BCEKD(temperature=2.0).compute(StepOutputs(student=student, teacher=teacher))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("kwargs", [{"weight": -1.0}, {"temperature": 0.0}])
def test_constructor_rejects_bad_values(kwargs):
    with pytest.raises(DistillError):
        BCEKD(**kwargs)
