"""AB: connectors and the activation-boundary margin loss, deeper layers weighted more."""

from __future__ import annotations

import copy

import pytest
import torch

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import AB, CrossEntropy, StepOutputs
from distill.losses.functional import ab_loss


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


def test_flags_and_settings():
    term = AB(["layer1", "layer2", "layer3"])
    assert term.needs_build and term.layer_weights() == [0.25, 0.5, 1.0]
    with pytest.raises(DistillError, match="margin"):
        AB("a", margin=-1)


def test_trains_connectors_and_student_not_teacher(make_cnn):
    module, _ = two_training_steps(AB(["2", "3"], weight=0.003), make_cnn, "ab")
    connectors = module.loss_terms["ab"].connectors
    assert [type(m).__name__ for m in connectors[0]] == ["Conv2d", "BatchNorm2d"]


def test_value_by_hand_with_a_connector_that_pools():
    torch.manual_seed(0)
    s1, s2 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)
    t1, t2 = torch.randn(2, 5, 2, 2), torch.randn(2, 6, 2, 2)
    outputs = StepOutputs(
        student=torch.zeros(2, 2), student_features={"a": s1, "b": s2}, teacher_features={"x": t1, "y": t2}
    )
    term = AB(["a", "b"], ["x", "y"], margin=0.5)
    term.build(outputs)
    first, second = term.connectors
    assert type(first[0]).__name__ == "AdaptiveAvgPool2d" and len(second) == 2
    pooled = s1.reshape(2, 3, 2, 2, 2, 2).mean(dim=(3, 5))
    expected = 0.5 * ab_loss(first[2](first[1](pooled)), t1, 0.5) + 1.0 * ab_loss(second(s2), t2, 0.5)
    assert term.compute(outputs).item() == pytest.approx(expected.item(), rel=1e-5)
