import math

import pytest
import torch

from distill.errors import DistillError
from distill.losses import AttentionTransfer, StepOutputs


def test_flags_and_defaults():
    term = AttentionTransfer(["layer1", "layer2"], weight=1000)
    assert term.needs_teacher and not term.needs_labels and not term.compares_outputs and not term.needs_build
    assert term.student_layers == term.teacher_layers == ("layer1", "layer2")
    assert term.p == 2.0 and term.weight == 1000.0


def test_pairs_are_matched_by_position_and_summed():
    # pair (a, x): maps [1, 0] vs [1, 1] -> ((1 - r)^2 + r^2) / 2; pair (b, y): identical maps -> 0
    r = 1 / math.sqrt(2)
    outputs = StepOutputs(
        student=torch.zeros(1, 2),
        teacher=torch.zeros(1, 2),
        student_features={"a": torch.tensor([[[[1.0, 0.0]]]]), "b": torch.tensor([[[[3.0, 1.0]]]])},
        teacher_features={"x": torch.tensor([[[[1.0, 1.0]]]]), "y": torch.tensor([[[[6.0, 2.0]]]] * 1)},
    )
    value = AttentionTransfer(["a", "b"], ["x", "y"]).compute(outputs)
    assert value.item() == pytest.approx(((1 - r) ** 2 + r**2) / 2, rel=1e-6)


def test_missing_feature_is_a_clear_error():
    with pytest.raises(DistillError, match="teacher layer.*layer3.*not captured"):
        AttentionTransfer("layer3").compute(
            StepOutputs(student=torch.zeros(1, 2), student_features={"layer3": torch.ones(1, 1, 2, 2)})
        )
