"""Accuracy, top-5, ECE, NLL and agreement from test-set logits, checked by hand and against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional.classification import multiclass_calibration_error

from distill.errors import DistillError
from distill.report.metrics import (
    classification_metrics,
    collect_logits,
    reliability_bins,
)


def two_class_logits(confidences):
    """Logits whose softmax puts probability ``c`` on class 0: [log c, log(1 - c)]."""
    return torch.tensor([[math.log(c), math.log(1 - c)] for c in confidences], dtype=torch.float64)


def numpy_ece(logits: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """Guo et al. (2017) ECE, written independently: bins ((m-1)/M, m/M], weighted by size."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    confidence, prediction = probs.max(axis=1), probs.argmax(axis=1)
    correct = prediction == labels
    ece = 0.0
    for m in range(1, n_bins + 1):
        lo, hi = (m - 1) / n_bins, m / n_bins
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def test_ece_accuracy_and_nll_by_hand():
    # confidence in class 0 and whether class 0 is right:
    #   0.9 right, 0.9 wrong -> bin (13/15, 14/15]: acc 0.5, conf 0.9, gap 0.4,  weight 2/4
    #   0.7 right            -> bin (10/15, 11/15]: acc 1,   conf 0.7, gap 0.3,  weight 1/4
    #   0.55 wrong           -> bin ( 8/15,  9/15]: acc 0,   conf 0.55, gap 0.55, weight 1/4
    logits = two_class_logits([0.9, 0.9, 0.7, 0.55])
    labels = torch.tensor([0, 1, 0, 1])
    metrics = classification_metrics(logits, labels)
    assert metrics["ece"] == pytest.approx(0.5 * 0.4 + 0.25 * 0.3 + 0.25 * 0.55)  # 0.4125
    assert metrics["accuracy"] == pytest.approx(0.5)
    expected_nll = -(math.log(0.9) + math.log(0.1) + math.log(0.7) + math.log(0.45)) / 4
    assert metrics["nll"] == pytest.approx(expected_nll)
    assert metrics["top5_accuracy"] is None  # 2 classes
    assert metrics["agreement"] is None
    assert metrics["samples"] == 4 and metrics["classes"] == 2


def test_reliability_bins_by_hand():
    bins = reliability_bins(two_class_logits([0.9, 0.9, 0.7, 0.55]), torch.tensor([0, 1, 0, 1]))
    assert len(bins["edges"]) == 16 and bins["edges"][0] == 0 and bins["edges"][-1] == 1
    assert bins["count"] == [0] * 8 + [1, 0, 1, 0, 0, 2, 0]
    assert bins["accuracy"][13] == pytest.approx(0.5) and bins["confidence"][13] == pytest.approx(0.9)
    assert bins["accuracy"][10] == pytest.approx(1.0) and bins["confidence"][10] == pytest.approx(0.7)
    assert bins["accuracy"][8] == 0.0 and bins["confidence"][8] == pytest.approx(0.55)
    assert bins["accuracy"][0] == 0.0 and bins["confidence"][0] == 0.0  # empty bin
    assert bins["ece"] == pytest.approx(0.4125)


def test_confidence_of_exactly_one_shares_the_last_bin():
    # softmax of [0, -1000] is exactly 1.0; Guo's bins are closed on the right, so it joins 0.97
    # in (14/15, 1]: acc 0.5, conf 0.985 -> ECE 0.485 (a separate bin for 1.0 would give 0.515)
    logits = torch.cat([torch.tensor([[0.0, -1000.0]], dtype=torch.float64), two_class_logits([0.97])])
    labels = torch.tensor([1, 0])
    bins = reliability_bins(logits, labels)
    assert bins["count"][14] == 2 and sum(bins["count"]) == 2
    assert bins["ece"] == pytest.approx(0.485)


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_ece_matches_numpy_and_torchmetrics_on_random_logits(scale):
    torch.manual_seed(0)
    logits = torch.randn(500, 10) * scale
    labels = torch.randint(0, 10, (500,))
    ece = classification_metrics(logits, labels)["ece"]
    assert ece == pytest.approx(numpy_ece(logits.double().numpy(), labels.numpy(), 15), abs=1e-9)
    # torchmetrics bins differ only at exact bin edges, which random data does not hit
    reference = multiclass_calibration_error(logits, labels, num_classes=10, n_bins=15, norm="l1")
    assert ece == pytest.approx(reference.item(), abs=1e-5)


def test_top5_accuracy_by_hand():
    # logits 0..9: class 9 is ranked first, class 5 fifth, class 4 sixth
    logits = torch.arange(10, dtype=torch.float32).repeat(4, 1)
    labels = torch.tensor([9, 5, 4, 0])
    metrics = classification_metrics(logits, labels)
    assert metrics["top5_accuracy"] == pytest.approx(2 / 4)
    assert metrics["accuracy"] == pytest.approx(1 / 4)


def test_top5_needs_ten_classes():
    logits = torch.randn(6, 9)
    assert classification_metrics(logits, torch.zeros(6, dtype=torch.long))["top5_accuracy"] is None
    logits = torch.randn(6, 10)
    assert classification_metrics(logits, torch.zeros(6, dtype=torch.long))["top5_accuracy"] is not None


def test_nll_equals_mean_negative_log_softmax():
    torch.manual_seed(1)
    logits = torch.randn(20, 5)
    labels = torch.randint(0, 5, (20,))
    expected = 0.0
    for row, label in zip(logits.tolist(), labels.tolist()):
        expected += -(row[label] - math.log(sum(math.exp(v) for v in row)))
    assert classification_metrics(logits, labels)["nll"] == pytest.approx(expected / 20, rel=1e-6)


def test_agreement_and_unlabelled_data():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 5.0], [1.0, 0.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 9.0], [1.0, 2.0, 0.0]])
    metrics = classification_metrics(logits, None, reference_logits=teacher)
    assert metrics["agreement"] == pytest.approx(2 / 4)
    assert all(metrics[k] is None for k in ("accuracy", "top5_accuracy", "ece", "nll"))


def test_bad_inputs_are_named():
    with pytest.raises(DistillError, match="labels range from 0 to 7"):
        classification_metrics(torch.randn(3, 4), torch.tensor([0, 1, 7]))
    with pytest.raises(DistillError, match="one integer class label per sample"):
        classification_metrics(torch.randn(3, 4), torch.tensor([0, 1]))
    with pytest.raises(DistillError, match="do not match"):
        classification_metrics(torch.randn(3, 4), None, reference_logits=torch.randn(3, 5))
    with pytest.raises(DistillError, match=r"\[samples, classes\]"):
        classification_metrics(torch.randn(3, 4, 2), None)


class Dropper(nn.Module):
    """Dropout before a linear layer: outputs are deterministic only in eval mode."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 3))

    def forward(self, x):
        return self.net(x)


def test_collect_logits_runs_in_eval_mode_over_every_batch():
    torch.manual_seed(0)
    x, y = torch.randn(23, 4), torch.randint(0, 3, (23,))
    model = Dropper().train()
    logits, labels = collect_logits(model, DataLoader(TensorDataset(x, y), batch_size=5))
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        # batches of 5 and one batch of 23 may take different BLAS kernels: equal to float rounding
        assert torch.allclose(logits, model(x), rtol=1e-5, atol=1e-6)
    assert torch.equal(labels, y)
    assert not logits.requires_grad


def test_collect_logits_without_labels_and_with_output_objects():
    x = torch.randn(10, 4)

    class DictOutput(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x):
            return {"logits": self.linear(x)}

    model = DictOutput()
    logits, labels = collect_logits(model, DataLoader(TensorDataset(x), batch_size=4))
    assert labels is None and logits.shape == (10, 3)
    with torch.no_grad():
        assert torch.allclose(logits, model.linear(x))
