"""CC: a trained student embedding head, optional teacher head, congruent correlation matrices."""

from __future__ import annotations

import copy

import pytest
import torch

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import CC, CrossEntropy, StepOutputs
from distill.losses.functional import cc_loss


def two_training_steps(term, make_cnn, name, batch_size=8):
    """Build ``term`` in a DistillationModule on a tiny pair and take two SGD steps; check who learns."""
    torch.manual_seed(0)
    student, teacher = make_cnn(width=4), make_cnn(width=8)
    teacher_state = copy.deepcopy(teacher.state_dict())
    module = DistillationModule(student, teacher, {name: term, "ce": CrossEntropy()})
    batch = (torch.randn(batch_size, 1, 8, 8), torch.randint(0, 10, (batch_size,)), torch.arange(batch_size))
    module.build(batch)
    own = dict(term.named_parameters())
    own_before = {k: p.detach().clone() for k, p in own.items()}
    student_before = copy.deepcopy(student.state_dict())
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.01)
    for step in range(2):
        optimizer.zero_grad()
        loss = module.training_step(batch, step)
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        if step == 0:
            assert [k for k, p in own.items() if p.grad is None] == []
            assert all(p.grad is None for p in teacher.parameters())
        optimizer.step()
    assert [k for k, p in own.items() if torch.equal(own_before[k], p.detach())] == []
    assert any(not torch.equal(v, student.state_dict()[k]) for k, v in student_before.items())
    for key, value in teacher.state_dict().items():  # BatchNorm buffers included
        assert torch.equal(teacher_state[key], value), key
    return module, batch


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


def test_trains_the_student_head_and_student_not_teacher(make_cnn):
    module, _ = two_training_steps(CC("4", embed_dim=6), make_cnn, "cc")
    assert set(dict(module.loss_terms["cc"].named_parameters())) == {"student_head.weight", "student_head.bias"}


def test_trains_a_teacher_head_when_asked(make_cnn):
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
