import pytest
import torch

from distill.errors import DistillError
from distill.losses import JSD, StepOutputs


def test_compute_matches_the_mixture_definition():
    student, teacher = torch.randn(4, 6), torch.randn(4, 6)
    beta, temperature = 0.3, 2.0
    p, q = torch.softmax(teacher / temperature, 1), torch.softmax(student / temperature, 1)
    m = beta * p + (1 - beta) * q
    kl = lambda a, b: (a * (a / b).log()).sum(1)  # noqa: E731
    expected = ((beta * kl(p, m) + (1 - beta) * kl(q, m)) * temperature**2).mean()
    got = JSD(beta=beta, temperature=temperature).compute(StepOutputs(student=student, teacher=teacher))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_flags():
    assert JSD.compares_outputs and JSD.needs_teacher and not JSD.needs_labels


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weight": -1.0},
        {"temperature": -2.0},
        {"beta": 0.0},
        {"beta": 1.0},
        {"beta": 1.5},
        {"beta": float("nan")},
    ],
)
def test_constructor_rejects_bad_values(kwargs):
    with pytest.raises(DistillError):
        JSD(**kwargs)
