"""ReviewKD: attention-based fusion from deep to shallow levels, the hierarchical context loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.losses import ReviewKD, StepOutputs
from distill.losses.functional import hcl_loss


def hand_outputs(students, teachers):
    return StepOutputs(
        student=torch.zeros(len(students[0]), 2),
        teacher=torch.zeros(len(students[0]), 2),
        student_features={f"s{i}": f for i, f in enumerate(students)},
        teacher_features={f"t{i}": f for i, f in enumerate(teachers)},
    )


def test_flags_and_layers():
    term = ReviewKD(["layer1", "layer2"])
    assert term.needs_build and term.teacher_layers == ("layer1", "layer2")
    assert "mid_channels=None" in repr(term)
    with pytest.raises(DistillError, match="matched by position"):
        ReviewKD(["a", "b"], ["c"])


def test_trains_fusions_and_student_not_teacher(make_cnn, two_training_steps):
    module, _ = two_training_steps(ReviewKD(["2", "3"]), make_cnn, "review")
    abfs = module.loss_terms["review"].abfs
    assert abfs[0].att_conv is not None and abfs[1].att_conv is None  # the deepest level has nothing to fuse
    assert abfs[0].conv1[0].out_channels == 4  # min(512, the deepest student level's 4 channels)
    assert abfs[0].conv2[0].out_channels == 8  # the teacher's channels


def test_review_path_by_hand():
    torch.manual_seed(0)
    students = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2), torch.randn(2, 6)]  # a pooled vector last
    teachers = [torch.randn(2, 7, 8, 8), torch.randn(2, 9, 4, 4), torch.randn(2, 11, 1, 1)]
    term = ReviewKD(["s0", "s1", "s2"], ["t0", "t1", "t2"], mid_channels=4)
    outputs = hand_outputs(students, teachers)
    term.build(outputs)
    value = term.compute(outputs)

    def fuse(abf, x, residual, size):
        x = abf.conv1(x)
        if residual is not None:
            residual = F.interpolate(residual, size=x.shape[2:], mode="nearest")
            weights = torch.sigmoid(abf.att_conv[0](torch.cat([x, residual], 1)))
            x = x * weights[:, :1] + residual * weights[:, 1:]
        x = F.interpolate(x, size=size, mode="nearest")  # to the teacher's size (identity when equal)
        return abf.conv2(x), x

    out2, res = fuse(term.abfs[2], students[2][:, :, None, None], None, (1, 1))
    out1, res = fuse(term.abfs[1], students[1], res, (4, 4))
    out0, _ = fuse(term.abfs[0], students[0], res, (8, 8))
    assert [o.shape[1:] for o in (out0, out1, out2)] == [t.shape[1:] for t in teachers]
    assert value.item() == pytest.approx(hcl_loss([out0, out1, out2], teachers).item(), rel=1e-5)


def test_needs_feature_maps():
    term = ReviewKD(["s0"], ["t0"])
    with pytest.raises(DistillError, match="feature maps"):
        term.build(hand_outputs([torch.randn(2, 3, 4)], [torch.randn(2, 3, 4)]))


def test_compute_before_build_is_a_clear_error():
    with pytest.raises(DistillError, match="build"):
        ReviewKD(["s0"], ["t0"]).compute(hand_outputs([torch.randn(2, 3, 2, 2)], [torch.randn(2, 3, 2, 2)]))
