"""First-batch checks on hand-made outputs: shapes the terms compare, probabilities, label range."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.checks.first_batch import check_first_batch, looks_like_probabilities
from distill.losses import KD, CrossEntropy
from distill.losses.base import StepOutputs


def test_shapes_labels_and_probabilities():
    terms = {"kd": KD(), "ce": CrossEntropy()}
    with pytest.raises(DistillError, match=r"\(2, 10\) does not match teacher output shape \(2, 1000\) .* kd"):
        check_first_batch(StepOutputs(torch.zeros(2, 10), torch.zeros(2, 1000)), terms, 1)
    with pytest.raises(DistillError, match="labels range from 0 to 12 but the student predicts 10 classes"):
        check_first_batch(StepOutputs(torch.zeros(2, 10), torch.zeros(2, 10), torch.tensor([0, 12])), terms, 1)
    with pytest.warns(UserWarning, match="look like probabilities"):
        check_first_batch(StepOutputs(torch.zeros(2, 4), torch.full((2, 4), 0.25)), terms, 1)
    check_first_batch(StepOutputs(torch.zeros(2, 10), torch.zeros(2, 10), torch.tensor([0, 9])), terms, 1)  # fine


def test_probabilities_need_non_negative_rows_summing_to_one():
    assert looks_like_probabilities(torch.tensor([[0.2, 0.8]]), 1)
    assert not looks_like_probabilities(torch.tensor([[-0.2, 1.2]]), 1)
    assert not looks_like_probabilities(torch.tensor([[0.5, 0.6]]), 1)
    assert not looks_like_probabilities(torch.tensor([1.0]), 0)  # no class dimension
