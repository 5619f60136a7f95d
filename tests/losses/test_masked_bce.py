import math

import pytest
import torch

from distill.errors import DistillError
from distill.losses import MaskedBCE, StepOutputs


def _bce(x: float, y: float, pos_weight: float = 1.0) -> float:
    probability = 1 / (1 + math.exp(-x))
    return -(pos_weight * y * math.log(probability) + (1 - y) * math.log(1 - probability))


def test_compute_leaves_out_unknown_labels():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    labels = torch.tensor([[1, -1], [0, 1]])
    expected = (_bce(2.0, 1) + _bce(0.5, 0) + _bce(0.0, 1)) / 3
    got = MaskedBCE().compute(StepOutputs(student=logits, labels=labels))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_pos_weight_per_class():
    logits = torch.tensor([[2.0, -1.0]])
    labels = torch.tensor([[1.0, 1.0]])
    expected = (_bce(2.0, 1, 3.0) + _bce(-1.0, 1, 0.5)) / 2
    got = MaskedBCE(pos_weight=[3.0, 0.5]).compute(StepOutputs(student=logits, labels=labels))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_pos_weight_of_the_wrong_length_is_reported():
    with pytest.raises(DistillError, match="pos_weight"):
        MaskedBCE(pos_weight=[1.0]).compute(StepOutputs(student=torch.zeros(1, 3), labels=torch.ones(1, 3)))


def test_flags():
    assert MaskedBCE.needs_labels and not MaskedBCE.needs_teacher


@pytest.mark.parametrize(
    "kwargs", [{"weight": -1.0}, {"pos_weight": [1.0, -2.0]}, {"pos_weight": [float("nan")]}]
)
def test_constructor_rejects_bad_values(kwargs):
    with pytest.raises(DistillError):
        MaskedBCE(**kwargs)


def test_missing_labels_are_reported():
    with pytest.raises(DistillError, match="labels"):
        MaskedBCE().compute(StepOutputs(student=torch.zeros(1, 3)))


def test_integer_class_labels_are_one_vs_rest_targets():
    import math

    from distill.losses import MaskedBCE, StepOutputs

    logits = torch.tensor([[0.0, 0.0, 0.0]])
    # one-hot [0, 1, 0]: every entry has BCE ln 2 at logit 0
    value = MaskedBCE().compute(StepOutputs(student=logits, labels=torch.tensor([1])))
    assert value.item() == pytest.approx(math.log(2.0))
    logits = torch.tensor([[2.0, -1.0]])
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2  # label 0: [1, 0]
    value = MaskedBCE().compute(StepOutputs(student=logits, labels=torch.tensor([0])))
    assert value.item() == pytest.approx(expected, rel=1e-6)
