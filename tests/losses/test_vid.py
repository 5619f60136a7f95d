"""VID: regressors, learned per-channel variances, the Gaussian negative log-likelihood."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.losses import VID, StepOutputs
from distill.losses.functional import vid_loss


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


def test_trains_regressors_variances_and_student_not_teacher(make_cnn, two_training_steps):
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
