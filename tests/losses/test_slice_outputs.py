import math

import pytest
import torch

from distill.errors import DistillError
from distill.losses import BCEKD, KD, FitNet, SliceOutputs, StepOutputs
from distill.losses.functional import kd_loss


def test_one_kd_term_per_teacher_reads_that_teachers_columns():
    torch.manual_seed(0)
    student = torch.randn(4, 3)
    teachers = torch.randn(4, 6)  # two 3-class teachers side by side
    outputs = StepOutputs(student=student, teacher=teachers)
    first = SliceOutputs(KD(temperature=2.0, weight=0.3), teacher_columns=[0, 3])
    second = SliceOutputs(KD(temperature=2.0), teacher_columns=[3, 6])
    assert torch.allclose(first(outputs), kd_loss(student, teachers[:, :3], 2.0))
    assert torch.allclose(second(outputs), kd_loss(student, teachers[:, 3:], 2.0))
    assert first.weight == 0.3 and first.needs_teacher and not first.needs_labels
    assert first.per_sample(outputs).shape == (4,)


def test_a_binary_teacher_supervises_one_student_head():
    # head 1 of the student (logit 0) against the teacher's single logit (0): BCE(sigmoid 0.5 vs 0.5) = log 2
    outputs = StepOutputs(student=torch.tensor([[5.0, 0.0, -3.0]]), teacher=torch.tensor([[0.0]]))
    term = SliceOutputs(BCEKD(), student_columns=[1, 2])
    assert term(outputs).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"teacher_columns": [3, 3]}, "teacher_columns must be [start, stop] with 0 <= start < stop, got [3, 3]"),
        ({"student_columns": [0]}, "student_columns must be [start, stop]"),
    ],
)
def test_bad_columns(kwargs, message):
    with pytest.raises(DistillError) as error:
        SliceOutputs(KD(), **kwargs)
    assert message in str(error.value)


def test_columns_past_the_outputs_and_feature_terms_are_refused():
    term = SliceOutputs(KD(), teacher_columns=[2, 5])
    with pytest.raises(DistillError, match="columns \\[2, 5\\) of the teacher's outputs, but they have 4"):
        term(StepOutputs(student=torch.zeros(1, 3), teacher=torch.zeros(1, 4)))
    with pytest.raises(DistillError, match="only logit terms can be sliced"):
        SliceOutputs(FitNet(student_layer="a", teacher_layer="b"))
