import math

import pytest
import torch

from distill.losses import SimilarityPreserving, StepOutputs


def test_flags():
    term = SimilarityPreserving("layer4", weight=3000)
    assert term.needs_teacher and not term.needs_labels and not term.compares_outputs
    assert term.student_layers == term.teacher_layers == ("layer4",)


def test_value_by_hand_with_different_widths():
    # student rows orthogonal: G = I; teacher rows equal (width 3): G = 1/sqrt 2 everywhere
    r = 1 / math.sqrt(2)
    outputs = StepOutputs(
        student=torch.zeros(2, 2),
        teacher=torch.zeros(2, 2),
        student_features={"s": torch.tensor([[1.0, 0.0], [0.0, 1.0]])},
        teacher_features={"t": torch.ones(2, 3)},
    )
    value = SimilarityPreserving("s", "t").compute(outputs)
    assert value.item() == pytest.approx((2 * (1 - r) ** 2 + 2 * r**2) / 4, rel=1e-6)
