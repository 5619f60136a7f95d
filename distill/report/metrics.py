"""Test-set quality of a classifier from its logits: accuracy, calibration, likelihood, agreement.

Everything here works on logits for the *whole* test set at once (``[N, C]``,
collected with :func:`collect_logits`), so each number is computed exactly
rather than averaged over batches.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor, nn

from distill.batch import forward_logits, split_batch
from distill.errors import DistillError

#: top-5 accuracy is reported only with at least this many classes (with fewer it is close to 1 and says little)
TOP5_MIN_CLASSES = 10


def _check_logits(logits: Tensor, labels: Tensor | None, owner: str) -> None:
    if logits.dim() != 2:
        raise DistillError(
            f"{owner}: expected logits of shape [samples, classes], got {tuple(logits.shape)}"
        )
    if labels is None:
        return
    if labels.dim() != 1 or len(labels) != len(logits) or labels.is_floating_point():
        raise DistillError(
            f"{owner}: expected one integer class label per sample ({len(logits)}), got labels of "
            f"shape {tuple(labels.shape)} and dtype {labels.dtype}"
        )
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise DistillError(
            f"{owner}: labels range from {int(labels.min())} to {int(labels.max())} but the logits "
            f"have {logits.shape[1]} classes"
        )


def reliability_bins(logits: Tensor, labels: Tensor, n_bins: int = 15) -> dict[str, Any]:
    """Confidence/accuracy per confidence bin, for a reliability diagram and the ECE.

    The confidence of a sample is its largest softmax probability; it falls in
    bin ``m`` (0-based) when ``m / n_bins < confidence <= (m + 1) / n_bins``:
    equal-width bins closed on the right, as in Guo et al., "On Calibration of
    Modern Neural Networks" (ICML 2017).

    Returns a dict of plain Python values (JSON-ready):

    - ``edges``: the ``n_bins + 1`` bin edges from 0 to 1;
    - ``confidence``, ``accuracy``: per bin, the mean confidence and the
      fraction of correct top-1 predictions (0.0 for an empty bin);
    - ``count``: per bin, the number of samples;
    - ``ece``: the expected calibration error,
      ``sum_m count_m / N * |accuracy_m - confidence_m|``.
    """
    if labels is None:
        raise DistillError("reliability_bins: needs labels")
    _check_logits(logits, labels, "reliability_bins")
    n_bins = int(n_bins)
    if n_bins < 1:
        raise DistillError(f"reliability_bins: n_bins must be at least 1, got {n_bins}")
    # float64: the confidences of a sure model sit within float32 rounding of the bin edges
    probs = torch.softmax(logits.detach().double(), dim=1)
    confidence, prediction = probs.max(dim=1)
    correct = (prediction == labels.to(prediction.device)).double()
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=confidence.device)
    # bucketize with right=False: edges[i-1] < x <= edges[i], i.e. bins closed on the right
    index = torch.bucketize(confidence, edges[1:-1], right=False)
    count = torch.zeros(n_bins, dtype=torch.float64, device=confidence.device).index_add_(
        0, index, torch.ones_like(confidence)
    )
    conf_sum = torch.zeros_like(count).index_add_(0, index, confidence)
    acc_sum = torch.zeros_like(count).index_add_(0, index, correct)
    safe = count.clamp_min(1.0)
    mean_conf, mean_acc = conf_sum / safe, acc_sum / safe
    total = max(len(confidence), 1)
    ece = float(((count / total) * (mean_acc - mean_conf).abs()).sum())
    return {
        "edges": edges.tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": mean_acc.tolist(),
        "count": [int(c) for c in count.tolist()],
        "ece": ece,
    }


def classification_metrics(
    logits: Tensor,
    labels: Tensor | None,
    reference_logits: Tensor | None = None,
    n_bins: int = 15,
) -> dict[str, Any]:
    """Quality numbers of one model on a whole test set.

    Args:
        logits: ``[N, C]`` logits of the model.
        labels: ``[N]`` integer class labels, or ``None`` for unlabelled data
            (then every label-based number is ``None``).
        reference_logits: ``[N, C]`` logits of a reference model (the teacher),
            for the agreement.
        n_bins: number of equal-width confidence bins of the ECE.

    Returns a dict with

    - ``accuracy``: top-1 accuracy;
    - ``top5_accuracy``: top-5 accuracy, ``None`` with fewer than 10 classes;
    - ``ece``: expected calibration error (Guo et al. 2017: equal-width
      confidence bins, closed on the right, weighted by bin size; see
      :func:`reliability_bins`);
    - ``nll``: negative log-likelihood, the mean cross-entropy in nats;
    - ``agreement``: fraction of samples where the arg-max equals the
      reference's, ``None`` without ``reference_logits``;
    - ``samples``, ``classes``: the size of the evaluation.

    The ECE is computed here rather than with torchmetrics'
    ``multiclass_calibration_error``, whose bins are closed on the left (a
    confidence of exactly 1.0, common in float32, lands in an extra bin of its
    own) and which takes inputs that happen to lie in [0, 1] for probabilities
    instead of logits; away from those cases the two agree (see the tests).
    """
    _check_logits(logits, labels, "classification_metrics")
    logits = logits.detach()
    num_samples, num_classes = logits.shape
    result: dict[str, Any] = {
        "accuracy": None,
        "top5_accuracy": None,
        "ece": None,
        "nll": None,
        "agreement": None,
        "samples": int(num_samples),
        "classes": int(num_classes),
    }
    prediction = logits.argmax(dim=1)
    if reference_logits is not None:
        if reference_logits.shape != logits.shape:
            raise DistillError(
                f"classification_metrics: reference logits of shape {tuple(reference_logits.shape)} "
                f"do not match the logits' {tuple(logits.shape)}"
            )
        reference = reference_logits.detach().to(logits.device).argmax(dim=1)
        result["agreement"] = float((prediction == reference).double().mean()) if num_samples else None
    if labels is None or num_samples == 0:
        return result
    labels = labels.to(logits.device)
    result["accuracy"] = float((prediction == labels).double().mean())
    if num_classes >= TOP5_MIN_CLASSES:
        top5 = logits.topk(5, dim=1).indices
        result["top5_accuracy"] = float((top5 == labels[:, None]).any(dim=1).double().mean())
    result["ece"] = reliability_bins(logits, labels, n_bins)["ece"]
    result["nll"] = float(F.cross_entropy(logits.double(), labels))
    return result


def collect_logits(
    model: nn.Module, dataloader: Any, device: str | torch.device = "cpu"
) -> tuple[Tensor, Tensor | None]:
    """Run ``model`` over ``dataloader`` and return all its logits and labels, on the CPU.

    The model is moved to ``device`` (and left there) and run in eval mode under
    ``torch.no_grad()``; its training mode is restored afterwards. Batches may
    take any form :func:`distill.batch.split_batch` reads. Labels are ``None``
    when the batches have none.
    """
    model.to(device)
    was_training = model.training
    model.eval()
    logits: list[Tensor] = []
    labels: list[Tensor] = []
    try:
        with torch.no_grad():
            for batch in dataloader:
                parts = split_batch(move_data_to_device(batch, device))
                logits.append(forward_logits(model, parts).detach().float().cpu())
                if parts.labels is not None:
                    labels.append(parts.labels.detach().cpu())
    finally:
        model.train(was_training)
    if not logits:
        raise DistillError("collect_logits: the data loader yielded no batches")
    if labels and len(labels) != len(logits):
        raise DistillError(
            f"collect_logits: {len(labels)} of {len(logits)} batches have labels; "
            "give labels with every batch or with none"
        )
    return torch.cat(logits), torch.cat(labels) if labels else None
