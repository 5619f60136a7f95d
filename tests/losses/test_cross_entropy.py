import math

import pytest
import torch

from distill.errors import DistillError
from distill.losses import CrossEntropy, StepOutputs


def test_cross_entropy_by_hand():
    # logits [0, ln 3]: p(class 1) = 3/4, so the loss on label 1 is -ln(3/4)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    value = CrossEntropy().compute(StepOutputs(student=logits, labels=torch.tensor([1])))
    assert value.item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_label_smoothing_by_hand():
    # with smoothing e over C=2 classes the target is [e/2, 1 - e/2]
    logits = torch.tensor([[0.0, math.log(3.0)]])
    eps = 0.2
    expected = -(eps / 2) * math.log(0.25) - (1 - eps / 2) * math.log(0.75)
    value = CrossEntropy(label_smoothing=eps).compute(StepOutputs(student=logits, labels=torch.tensor([1])))
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_class_weights_by_hand():
    # weighted mean: sum_i w[y_i] * nll_i / sum_i w[y_i]
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    labels = torch.tensor([0, 1])
    expected = (1.0 * -math.log(0.25) + 3.0 * -math.log(0.75)) / 4.0
    value = CrossEntropy(class_weights=[1.0, 3.0]).compute(StepOutputs(student=logits, labels=labels))
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_needs_labels_and_says_so():
    term = CrossEntropy()
    assert term.needs_labels and not term.needs_teacher
    with pytest.raises(DistillError, match="needs labels"):
        term.compute(StepOutputs(student=torch.zeros(2, 3)))


def test_wrong_number_of_class_weights():
    with pytest.raises(DistillError, match="class_weights has 2 entries"):
        CrossEntropy(class_weights=[1.0, 2.0]).compute(
            StepOutputs(student=torch.zeros(2, 3), labels=torch.tensor([0, 1]))
        )


def test_rejects_bad_label_smoothing():
    with pytest.raises(DistillError, match="label_smoothing"):
        CrossEntropy(label_smoothing=1.0)
