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


# -- partly-labelled and mixed-label batches (issue 12) ------------------------------------


def test_ignored_labels_are_left_out_of_the_mean():
    # two samples: label 1 on logits [0, ln 3] (-ln 3/4) and an unlabelled one that must not count
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, -5.0]])
    value = CrossEntropy().compute(StepOutputs(student=logits, labels=torch.tensor([1, -100])))
    assert value.item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_a_batch_without_any_label_gives_exactly_zero_and_a_gradient_of_zero():
    logits = torch.randn(4, 3, requires_grad=True)
    value = CrossEntropy().compute(StepOutputs(student=logits, labels=torch.full((4,), -100)))
    assert value.item() == 0.0 and torch.isfinite(value)
    value.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 3))


def test_mixed_soft_targets_are_the_mix_of_the_two_cross_entropies():
    # t = lam * onehot(0) + (1 - lam) * onehot(1): lam * CE(0) + (1 - lam) * CE(1), by hand
    lam = 0.3
    logits = torch.tensor([[0.0, math.log(3.0)]])
    targets = torch.tensor([[lam, 1.0 - lam]])
    expected = lam * -math.log(0.25) + (1 - lam) * -math.log(0.75)
    value = CrossEntropy().compute(StepOutputs(student=logits, labels=targets))
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_soft_target_rows_of_minus_100_are_unlabelled():
    logits = torch.tensor([[0.0, math.log(3.0)], [1.0, 2.0]])
    targets = torch.tensor([[0.0, 1.0], [-100.0, -100.0]])
    value = CrossEntropy().compute(StepOutputs(student=logits, labels=targets))
    assert value.item() == pytest.approx(-math.log(0.75), rel=1e-6)
    per_sample = CrossEntropy().per_sample(StepOutputs(student=logits, labels=targets))
    assert per_sample.tolist() == pytest.approx([-math.log(0.75), 0.0], rel=1e-6)
