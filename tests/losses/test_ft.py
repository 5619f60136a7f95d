"""FT: translator and jointly trained paraphraser, the distance between normalised factors."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.losses import FT, StepOutputs
from distill.losses.functional import ft_loss


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


def test_trains_translator_paraphraser_and_student_not_teacher(make_cnn, two_training_steps):
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
