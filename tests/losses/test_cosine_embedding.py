import pytest
import torch

from distill.errors import DistillError
from distill.losses import CosineEmbedding, StepOutputs


def test_compute_by_hand():
    student = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    teacher = torch.tensor([[0.0, 2.0], [6.0, 8.0]])  # orthogonal (1 - 0), parallel (1 - 1)
    got = CosineEmbedding().compute(StepOutputs(student=student, teacher=teacher))
    assert got.item() == pytest.approx(0.5, abs=1e-6)


def test_ignores_the_length_of_the_vectors():
    student, teacher = torch.randn(3, 5), torch.randn(3, 5)
    term = CosineEmbedding()
    a = term.compute(StepOutputs(student=student, teacher=teacher))
    b = term.compute(StepOutputs(student=student * 7.0, teacher=teacher))
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_rejects_a_negative_weight():
    with pytest.raises(DistillError):
        CosineEmbedding(weight=-1.0)
