"""FSP: flows between layer pairs, adapters for the student's channel counts."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.losses import FSP, StepOutputs
from distill.losses.functional import fsp_loss


def test_flags_pairs_and_layers():
    term = FSP([["layer1", "layer2"], ["layer2", "layer3"]])
    assert term.needs_build
    assert term.student_layers == ("layer1", "layer2", "layer3") == term.teacher_layers
    assert "student_pairs=[['layer1', 'layer2'], ['layer2', 'layer3']]" in repr(term)
    with pytest.raises(DistillError, match="pairs"):
        FSP(["layer1", "layer2"])
    with pytest.raises(DistillError, match="matched by position"):
        FSP([["a", "b"]], [["a", "b"], ["b", "c"]])


def test_trains_adapters_and_student_not_teacher(make_cnn, two_training_steps):
    module, _ = two_training_steps(FSP([["2", "3"]]), make_cnn, "fsp")
    assert len(module.loss_terms["fsp"].adapters) == 2


def test_value_by_hand_and_identity_for_equal_channels():
    torch.manual_seed(0)
    s1, s2, t1, t2 = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 2, 2), torch.randn(2, 3, 4, 4), torch.randn(2, 6, 2, 2)
    outputs = StepOutputs(
        student=torch.zeros(2, 2), student_features={"a": s1, "b": s2}, teacher_features={"x": t1, "y": t2}
    )
    term = FSP([["a", "b"]], [["x", "y"]])
    term.build(outputs)
    first, second = term.adapters
    assert isinstance(first, torch.nn.Identity) and not isinstance(second, torch.nn.Identity)
    expected = fsp_loss(s1, second(s2), t1, t2)
    assert term.compute(outputs).item() == pytest.approx(expected.item(), rel=1e-6)
