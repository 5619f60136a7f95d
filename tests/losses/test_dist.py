import numpy as np
import pytest
import torch

from distill.errors import DistillError
from distill.losses import DIST, StepOutputs


def test_compute_matches_numpy_pearson():
    student, teacher = torch.randn(6, 4), torch.randn(6, 4)
    p = torch.softmax(student / 2.0, 1).double().numpy()
    q = torch.softmax(teacher / 2.0, 1).double().numpy()
    inter = np.mean([1 - np.corrcoef(p[i], q[i])[0, 1] for i in range(6)])
    intra = np.mean([1 - np.corrcoef(p[:, j], q[:, j])[0, 1] for j in range(4)])
    expected = 4.0 * (2.0 * inter + 0.5 * intra)
    got = DIST(beta=2.0, gamma=0.5, temperature=2.0).compute(StepOutputs(student=student, teacher=teacher))
    assert got.item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    "kwargs", [{"weight": -1.0}, {"temperature": 0.0}, {"beta": -1.0}, {"gamma": float("nan")}]
)
def test_constructor_rejects_bad_values(kwargs):
    with pytest.raises(DistillError):
        DIST(**kwargs)
