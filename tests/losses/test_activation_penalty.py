import pytest
import torch

from distill.errors import DistillError
from distill.losses import ActivationPenalty, StepOutputs


def test_student_only():
    term = ActivationPenalty("avgpool", weight=2.0)
    assert not term.needs_teacher and not term.needs_labels and not term.compares_outputs
    assert term.student_layers == ("avgpool",) and term.teacher_layers == ()
    with pytest.raises(TypeError):
        ActivationPenalty("avgpool", teacher_layer="avgpool")


def test_value_by_hand_summed_over_layers():
    outputs = StepOutputs(
        student=torch.zeros(1, 2),
        student_features={"a": torch.tensor([[1.0, -2.0]]), "b": torch.tensor([[3.0, 0.0, 0.0]])},
    )
    assert ActivationPenalty(["a", "b"]).compute(outputs).item() == pytest.approx(2.5 + 3.0)
    assert ActivationPenalty("a", p=1).compute(outputs).item() == pytest.approx(1.5)


def test_layer_is_required_and_named():
    with pytest.raises(DistillError, match="student_layer"):
        ActivationPenalty("")
