import math

import pytest
import torch

from distill.losses import RKD, StepOutputs


def test_flags_and_hyper_parameters():
    term = RKD("avgpool")
    assert term.needs_teacher and not term.needs_labels and not term.compares_outputs
    assert (term.distance_weight, term.angle_weight) == (25.0, 50.0)
    assert term.student_layers == term.teacher_layers == ("avgpool",)


def test_distance_part_by_hand():
    # student on a line at 0, 1, 2: normalised distances 3/4, 3/4, 3/2 (each twice);
    # teacher an equilateral triangle: all 1. smooth-L1 of -1/4, -1/4, 1/2 twice, over 9 entries
    student = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, math.sqrt(3) / 2, 0.0]])
    outputs = StepOutputs(
        student=torch.zeros(3, 2), student_features={"e": student}, teacher_features={"e": teacher}
    )
    expected = 2 * (2 * 0.5 * 0.25**2 + 0.5 * 0.5**2) / 9
    assert RKD("e", distance_weight=1.0, angle_weight=0.0).compute(outputs).item() == pytest.approx(expected, rel=1e-5)


def test_angle_part_by_hand():
    # student: right angle at 0 between 1 and 2; teacher: 60 degrees (equilateral triangle)
    student = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    # student cosines at each anchor: at 0 -> 0; at 1 and 2 -> cos 45 = r. Teacher: all 1/2.
    # per anchor, the two off-diagonal (j != k, both != anchor) entries differ; the j = k entries are 1 vs 1
    r = 1 / math.sqrt(2)
    differences = [0 - 0.5, r - 0.5, r - 0.5]
    expected = sum(2 * 0.5 * d**2 for d in differences) / 27
    outputs = StepOutputs(
        student=torch.zeros(3, 2), student_features={"e": student}, teacher_features={"e": teacher}
    )
    assert RKD("e", distance_weight=0.0, angle_weight=1.0).compute(outputs).item() == pytest.approx(expected, rel=1e-5)
