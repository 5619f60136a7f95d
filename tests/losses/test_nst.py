"""NST: MMD between channel activation patterns, over layer pairs, without parameters."""

from __future__ import annotations

import copy

import pytest
import torch

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import NST, CrossEntropy, StepOutputs
from distill.losses.functional import nst_loss


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
    term = NST(["layer1", "layer2"], weight=50)
    assert not term.needs_build and term.teacher_layers == ("layer1", "layer2")
    assert "degree=2" in repr(term)
    with pytest.raises(DistillError, match="degree"):
        NST("a", degree=0)


def test_trains_student_not_teacher(make_cnn):
    module, _ = two_training_steps(NST(["2", "3"]), make_cnn, "nst")
    assert not list(module.loss_terms["nst"].parameters())


def test_sums_the_layer_pairs():
    torch.manual_seed(0)
    s1, s2, t1, t2 = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 2, 2), torch.randn(2, 5, 4, 4), torch.randn(2, 6, 2, 2)
    outputs = StepOutputs(
        student=torch.zeros(2, 2),
        student_features={"a": s1, "b": s2},
        teacher_features={"x": t1, "y": t2},
    )
    value = NST(["a", "b"], ["x", "y"]).compute(outputs)
    assert value.item() == pytest.approx((nst_loss(s1, t1) + nst_loss(s2, t2)).item(), rel=1e-6)
