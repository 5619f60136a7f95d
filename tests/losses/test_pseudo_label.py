import math

import pytest
import torch

from distill.errors import DistillError
from distill.losses import PseudoLabel, StepOutputs
from distill.losses.functional import pseudo_label_loss

# teacher row 0: softmax([ln 3, 0, 0]) = [0.6, 0.2, 0.2] -> class 0, confidence 0.6
# teacher row 1: softmax([0, ln 9, 0]) = [0.09.., 0.818.., 0.09..] -> class 1, confidence 9/11
TEACHER = torch.tensor([[math.log(3.0), 0.0, 0.0], [0.0, math.log(9.0), 0.0]])
# student row 0: softmax([0, 0, 0]) -> -log(1/3) on class 0
# student row 1: softmax([0, ln 2, ln 5]) = [1/8, 2/8, 5/8] -> -log(2/8) on class 1
STUDENT = torch.tensor([[0.0, 0.0, 0.0], [0.0, math.log(2.0), math.log(5.0)]])


def test_cross_entropy_on_the_teachers_argmax_by_hand():
    value = PseudoLabel()(StepOutputs(student=STUDENT, teacher=TEACHER))
    assert value.item() == pytest.approx((math.log(3) + math.log(4)) / 2, rel=1e-6)
    per_sample = PseudoLabel().per_sample(StepOutputs(student=STUDENT, teacher=TEACHER))
    assert per_sample.tolist() == pytest.approx([math.log(3), math.log(4)], rel=1e-6)


def test_threshold_keeps_only_confident_teacher_rows():
    # 0.6 < 0.7 <= 9/11: only row 1 counts, and the mean is over that row alone
    value = pseudo_label_loss(STUDENT, TEACHER, threshold=0.7)
    assert value.item() == pytest.approx(math.log(4), rel=1e-6)
    # nothing confident enough: 0, still differentiable
    student = STUDENT.clone().requires_grad_()
    empty = pseudo_label_loss(student, TEACHER, threshold=0.95)
    assert empty.item() == 0.0
    empty.backward()
    assert torch.equal(student.grad, torch.zeros_like(student))


def test_gradient_reaches_the_student_only():
    student, teacher = STUDENT.clone().requires_grad_(), TEACHER.clone().requires_grad_()
    pseudo_label_loss(student, teacher).backward()
    assert teacher.grad is None
    # d/ds of -log softmax(s)_y = softmax(s) - onehot(y), averaged over 2 rows
    expected = torch.tensor([[1 / 3 - 1, 1 / 3, 1 / 3], [1 / 8, 2 / 8 - 1, 5 / 8]]) / 2
    assert torch.allclose(student.grad, expected, atol=1e-6)


def test_the_term_needs_no_labels_and_rejects_bad_thresholds():
    assert not PseudoLabel.needs_labels and PseudoLabel.needs_teacher
    with pytest.raises(DistillError, match="threshold must be in \\[0, 1\\), got 1.5"):
        PseudoLabel(threshold=1.5)
    with pytest.raises(ValueError, match="threshold must be in"):
        pseudo_label_loss(STUDENT, TEACHER, threshold=-0.1)
