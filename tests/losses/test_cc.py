"""CC: a trained student embedding head, optional teacher head, congruent correlation matrices."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.losses import CC, StepOutputs
from distill.losses.functional import cc_loss


def hand_outputs(student, teacher):
    return StepOutputs(
        student=torch.zeros(len(student), 2),
        teacher=torch.zeros(len(student), 2),
        student_features={"s": student},
        teacher_features={"t": teacher},
    )


def test_flags_and_settings():
    term = CC("avgpool", weight=0.02)
    assert term.needs_build and term.teacher_layers == ("avgpool",)
    assert "teacher_head=False" in repr(term)
    with pytest.raises(DistillError, match="gamma"):
        CC("a", gamma=0.0)


def test_trains_the_student_head_and_student_not_teacher(make_cnn, two_training_steps):
    module, _ = two_training_steps(CC("4", embed_dim=6), make_cnn, "cc")
    assert set(dict(module.loss_terms["cc"].named_parameters())) == {"student_head.weight", "student_head.bias"}


def test_trains_a_teacher_head_when_asked(make_cnn, two_training_steps):
    module, _ = two_training_steps(CC("4", embed_dim=6, teacher_head=True), make_cnn, "cc")
    assert module.loss_terms["cc"].teacher_head.weight.shape == (6, 32)


def test_value_by_hand():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 4, 1, 1), torch.randn(5, 9)
    term = CC("s", "t", embed_dim=3, gamma=0.3, order=3)
    outputs = hand_outputs(student, teacher)
    term.build(outputs)
    embedded = student.reshape(5, 4) @ term.student_head.weight.t() + term.student_head.bias

    def correlation(e):
        e = e / e.norm(dim=1, keepdim=True)
        c = e @ e.t()
        return torch.exp(torch.tensor(-0.6)) * (1 + 0.6 * c + 0.36 / 2 * c**2 + 0.216 / 6 * c**3)

    expected = ((correlation(embedded) - correlation(teacher)) ** 2).mean()
    assert term.compute(outputs).item() == pytest.approx(expected.item(), rel=1e-5)
    assert cc_loss(embedded, teacher, 0.3, 3).item() == pytest.approx(expected.item(), rel=1e-5)
