"""NST: MMD between channel activation patterns, over layer pairs, without parameters."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.losses import NST, StepOutputs
from distill.losses.functional import nst_loss


def test_flags_and_settings():
    term = NST(["layer1", "layer2"], weight=50)
    assert not term.needs_build and term.teacher_layers == ("layer1", "layer2")
    assert "degree=2" in repr(term)
    with pytest.raises(DistillError, match="degree"):
        NST("a", degree=0)


def test_trains_student_not_teacher(make_cnn, two_training_steps):
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
