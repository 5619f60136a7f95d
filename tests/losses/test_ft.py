"""FT: translator and jointly trained paraphraser, the distance between normalised factors."""

from __future__ import annotations

import copy

import pytest
import torch

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import FT, CrossEntropy, StepOutputs
from distill.losses.functional import ft_loss


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
    term = FT("layer3", weight=500)
    assert term.needs_build and term.student_layers == ("layer3",) and term.teacher_layers == ("layer3",)
    with pytest.raises(DistillError, match="rate"):
        FT("a", rate=0.0)
    with pytest.raises(DistillError, match="one layer"):
        FT(["a", "b"])


def test_trains_translator_paraphraser_and_student_not_teacher(make_cnn):
    module, _ = two_training_steps(FT("2", weight=5.0), make_cnn, "ft")
    term = module.loss_terms["ft"]
    assert term.translator[-3].out_channels == 4 == term.paraphraser.encoder[-3].out_channels  # rate 0.5 of 8


def test_value_adds_the_reconstruction_at_weight_one_in_the_total():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 3, 4, 4), torch.randn(4, 6, 4, 4).relu()
    term = FT("s", "t", weight=8.0, reconstruction_weight=2.0).scheduled(lambda epoch: 0.5 if epoch else 1.0)
    outputs = hand_outputs(student, teacher)
    term.build(outputs)
    term.on_epoch_start(1)  # weight 8 * 0.5 = 4: the reconstruction enters the term divided by 4
    value = term.compute(outputs)
    factor, reconstruction = term.paraphraser(teacher)
    transfer = ft_loss(term.translator(student), factor)
    expected = transfer + ((reconstruction - teacher) ** 2).mean() * 2.0 / 4.0
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    term.eval()  # outside training: the factor distance alone
    factor, _ = term.paraphraser(teacher)
    assert term.compute(outputs).item() == pytest.approx(ft_loss(term.translator(student), factor).item(), rel=1e-5)


def test_the_transfer_loss_never_moves_the_paraphraser():
    torch.manual_seed(0)
    term = FT("s", "t", reconstruction_weight=0.0)
    outputs = hand_outputs(torch.randn(4, 3, 2, 2), torch.randn(4, 6, 2, 2))
    term.build(outputs)
    term.compute(outputs).backward()
    assert all(p.grad is None for p in term.paraphraser.parameters())
    assert all(p.grad is not None for p in term.translator.parameters())


def test_compute_before_build_is_a_clear_error():
    with pytest.raises(DistillError, match="build"):
        FT("s", "t").compute(hand_outputs(torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)))
