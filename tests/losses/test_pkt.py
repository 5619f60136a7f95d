import math

import pytest
import torch

from distill.losses import PKT, StepOutputs


def test_flags():
    term = PKT("avgpool", weight=30000)
    assert term.needs_teacher and not term.needs_labels and not term.compares_outputs
    assert term.student_layers == term.teacher_layers == ("avgpool",)


def test_value_by_hand():
    # student orthogonal rows: p = [[2/3, 1/3], [1/3, 2/3]]; teacher equal rows: p = 1/2 everywhere
    outputs = StepOutputs(
        student=torch.zeros(2, 2),
        student_features={"s": torch.tensor([[1.0, 0.0], [0.0, 1.0]])},
        teacher_features={"t": torch.ones(2, 4)},
    )
    row = 0.5 * math.log(0.5 / (2 / 3)) + 0.5 * math.log(0.5 / (1 / 3))
    assert PKT("s", "t").compute(outputs).item() == pytest.approx(2 * row / 4, rel=1e-4)


def test_zero_when_the_student_copies_the_teacher_up_to_scale():
    embedding = torch.randn(5, 6)
    outputs = StepOutputs(
        student=torch.zeros(5, 2), student_features={"e": embedding}, teacher_features={"e": 4 * embedding}
    )
    assert PKT("e").compute(outputs).item() == pytest.approx(0.0, abs=1e-6)
