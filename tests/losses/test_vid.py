"""VID: regressors, learned per-channel variances, the Gaussian negative log-likelihood."""

from __future__ import annotations

import copy

import pytest
import torch

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import VID, CrossEntropy, StepOutputs
from distill.losses.functional import vid_loss


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
    term = VID(["layer1", "layer2"])
    assert term.needs_build and term.teacher_layers == ("layer1", "layer2")
    with pytest.raises(DistillError, match="init_variance"):
        VID("a", init_variance=0.0)


def test_trains_regressors_variances_and_student_not_teacher(make_cnn):
    module, _ = two_training_steps(VID(["2", "3"]), make_cnn, "vid")
    term = module.loss_terms["vid"]
    assert len(term.regressors) == 2 and [p.shape for p in term.log_scales] == [(8,), (8,)]


def test_value_by_hand_with_pooling_and_initial_variance():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)
    term = VID("s", "t", init_variance=5.0)
    outputs = hand_outputs(student, teacher)
    term.build(outputs)
    (variance,) = term.variances()
    torch.testing.assert_close(variance, torch.full((5,), 5.0))
    mean = term.regressors[0](student.reshape(2, 3, 2, 2, 2, 2).mean(dim=(3, 5)))  # the larger map pooled
    expected = (0.5 * ((mean - teacher) ** 2 / 5.0 + torch.log(torch.tensor(5.0)))).mean()
    assert term.compute(outputs).item() == pytest.approx(expected.item(), rel=1e-5)
    assert vid_loss(mean, teacher, variance).item() == pytest.approx(expected.item(), rel=1e-5)


def test_compute_before_build_is_a_clear_error():
    with pytest.raises(DistillError, match="build"):
        VID("s", "t").compute(hand_outputs(torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)))
