"""DistillationModule refuses pairs that cannot be distilled, each with a DistillError that says what to do."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import KD, CrossEntropy, LogitMSE


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_the_same_model_as_student_and_teacher_is_refused():
    model = mlp()
    with pytest.raises(DistillError, match="the student and the teacher are the same model.*copy.deepcopy"):
        DistillationModule(model, model, KD())
    with pytest.raises(DistillError, match="the same model"):
        DistillationModule(model, [mlp(1), model], KD())  # also as one member of an ensemble


@pytest.mark.parametrize("share", ["first layer", "a buffer's module", "the head", "a nested module"])
def test_a_student_sharing_modules_with_the_teacher_is_refused(share):
    teacher = mlp()
    if share == "first layer":
        student = nn.Sequential(teacher[0], nn.ReLU(), nn.Linear(8, 3))
        count, example = 2, "0.weight"
    elif share == "a buffer's module":
        student = nn.Sequential(nn.Linear(4, 8), teacher[1], nn.Linear(8, 3))
        count, example = 5, "1.weight"  # weight, bias, running mean and var, batch count
    elif share == "the head":
        student = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), teacher[3])
        count, example = 2, "2.weight"
    else:
        student = nn.Sequential(nn.Sequential(nn.Identity(), teacher[0]), nn.Linear(8, 3))
        count, example = 2, "0.1.weight"
    with pytest.raises(DistillError) as raised:
        DistillationModule(student, teacher, KD())
    text = str(raised.value)
    assert f"shares {count} parameter(s) or buffer(s) with the teacher (e.g. {example})" in text
    assert "copy.deepcopy(teacher)" in text and "never train" in text


def test_a_copied_teacher_is_a_valid_student_and_trains():
    teacher = mlp()
    student = copy.deepcopy(teacher)
    module = DistillationModule(student, teacher, LogitMSE())
    assert all(p.requires_grad for p in module.student.parameters())


@pytest.mark.parametrize("teacher", [None, "resnet18", 3])
def test_a_missing_or_wrong_teacher_is_refused(teacher):
    expected = "teacher is None" if teacher is None else "the teacher must be a torch.nn.Module"
    with pytest.raises(DistillError, match=expected):
        DistillationModule(mlp(), teacher, KD())


def test_a_student_that_is_not_a_module_is_refused():
    with pytest.raises(DistillError, match="the student must be a torch.nn.Module, got None"):
        DistillationModule(None, mlp(), KD())


def test_a_teacher_with_non_finite_weights_is_named_before_training():
    teacher = mlp()
    with torch.no_grad():
        teacher[3].bias[1] = float("inf")
    with pytest.raises(DistillError, match=r"the teacher has non-finite weights \(1 tensor\(s\), e.g. 3.bias\)"):
        DistillationModule(mlp(1), teacher, KD())


def test_non_finite_teacher_outputs_name_the_teacher_not_the_learning_rate():
    class Overflowing(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 3), float("inf")) * x.sum(1, keepdim=True).sign()

    module = DistillationModule(mlp(), Overflowing(), {"kd": KD(), "ce": CrossEntropy()})
    with pytest.raises(DistillError, match="the teacher's outputs are non-finite at step 0.*the teacher is the cause"):
        module.training_step((torch.randn(4, 4), torch.tensor([0, 1, 2, 0])), 0)


@pytest.mark.parametrize("labels", [torch.tensor([0.0, 1.0, 2.0, 1.0]), torch.tensor([[0.0], [1.0], [2.0], [1.0]])])
def test_float_class_labels_with_cross_entropy_say_to_use_integer_indices(labels, fast_trainer):
    module = DistillationModule(mlp(), mlp(1), {"kd": KD(), "ce": CrossEntropy()})
    loader = DataLoader(TensorDataset(torch.randn(4, 4), labels), batch_size=4)
    with pytest.raises(DistillError, match=r"loss term 'ce' \(CrossEntropy\) got float labels of shape .*integer class indices"):
        fast_trainer().fit(module, loader)


def test_one_probability_per_class_is_still_accepted():
    module = DistillationModule(mlp(), mlp(1), {"ce": CrossEntropy()})
    soft = torch.softmax(torch.randn(4, 3), 1)
    loss = module.training_step((torch.randn(4, 4), soft), 0)
    assert torch.isfinite(loss)
