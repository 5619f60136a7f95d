import pytest
import torch
from torch import nn

from distill.errors import DistillError
from distill.losses import FitNet, StepOutputs


def outputs(student_feature, teacher_feature, layer="f"):
    return StepOutputs(
        student=torch.zeros(len(student_feature), 2),
        teacher=torch.zeros(len(student_feature), 2),
        student_features={layer: student_feature},
        teacher_features={layer: teacher_feature},
    )


def test_flags_and_layers():
    term = FitNet("layer2", "layer3", weight=100)
    assert term.needs_build and term.needs_teacher
    assert not term.needs_labels and not term.compares_outputs
    assert term.student_layers == ("layer2",) and term.teacher_layers == ("layer3",)
    assert FitNet(["a", "b"]).teacher_layers == ("a", "b")  # the teacher's names default to the student's
    assert "layer2" in repr(term) and "weight=100.0" in repr(term)


def test_layer_lists_must_pair_up():
    with pytest.raises(DistillError, match="matched by position"):
        FitNet(["a", "b"], ["c"])
    with pytest.raises(DistillError, match="student_layer"):
        FitNet([])


def test_build_makes_one_adapter_per_pair_from_the_shapes():
    term = FitNet(["a", "b"], ["a", "b"])
    term.build(
        StepOutputs(
            student=torch.zeros(2, 2),
            student_features={"a": torch.zeros(2, 4, 8, 8), "b": torch.zeros(2, 16)},
            teacher_features={"a": torch.zeros(2, 8, 4, 4), "b": torch.zeros(2, 32)},
        )
    )
    assert isinstance(term.adapters, nn.ModuleList) and len(term.adapters) == 2
    assert isinstance(term.adapters[1], nn.Linear)
    names = [name for name, _ in term.named_parameters()]
    assert any(name.startswith("adapters.0.") for name in names) and "adapters.1.weight" in names


def test_value_is_the_mse_after_an_identity_adapter():
    term = FitNet("f")
    student, teacher = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    term.build(outputs(student, teacher))  # equal shapes: identity adapter
    assert term.compute(outputs(student, teacher)).item() == pytest.approx((1 + 4) / 2)


def test_compute_before_build_is_a_clear_error():
    with pytest.raises(DistillError, match="not built"):
        FitNet("f").compute(outputs(torch.zeros(2, 3), torch.zeros(2, 5)))


def test_unmappable_layer_pair_fails_at_build():
    with pytest.raises(DistillError, match=r"\[2, 4, 3, 3\].*\[2, 10\]"):
        FitNet("f").build(outputs(torch.zeros(2, 4, 3, 3), torch.zeros(2, 10)))
