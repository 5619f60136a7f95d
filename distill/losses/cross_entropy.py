"""CrossEntropy: the ordinary task loss on labels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.errors import DistillError
from distill.losses.base import LossTerm, StepOutputs, require_labels
from distill.partial_labels import IGNORE_INDEX


class CrossEntropy(LossTerm):
    """Cross-entropy between the student's logits and the labels.

    Args:
        weight: the term's weight in the total loss.
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`, in [0, 1).
        class_weights: optional per-class weights (one number per class).
        ignore_index: the label of samples without one (partly-labelled batches); they are left
            out of the mean, and a batch with no labelled sample gives exactly 0.

    Soft targets ``[N, C]`` (mixed labels of mixup/cutmix) work too: ``sum_c -t_c log p_c``,
    which for ``t = lam * onehot(a) + (1 - lam) * onehot(b)`` is ``lam * CE(a) + (1 - lam) * CE(b)``;
    a row of ``ignore_index`` marks an unlabelled sample.
    """

    needs_labels = True
    needs_teacher = False
    accepts_soft_labels = True

    def __init__(
        self,
        weight: float = 1.0,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(weight)
        self.ignore_index = int(ignore_index)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise DistillError(
                f"CrossEntropy: label_smoothing must be in [0, 1), got {label_smoothing}; "
                "0.1 is a common choice"
            )
        self.label_smoothing = float(label_smoothing)
        weights = None if class_weights is None else torch.as_tensor(list(class_weights), dtype=torch.float32)
        # a buffer follows the module to the right device and dtype
        self.register_buffer("class_weights", weights, persistent=False)

    def compute(self, outputs: StepOutputs) -> Tensor:
        return self._cross_entropy(outputs, "mean")

    def per_sample(self, outputs: StepOutputs) -> Tensor | None:
        """``w[y] * ce`` per sample: with class weights their plain mean differs from the weighted mean."""
        return None if outputs.labels is None else self._cross_entropy(outputs, "none")

    def _cross_entropy(self, outputs: StepOutputs, reduction: str) -> Tensor:
        labels = require_labels(outputs, "CrossEntropy")
        logits = outputs.student.float()
        if self.class_weights is not None and self.class_weights.numel() != logits.shape[1]:
            raise DistillError(
                f"CrossEntropy: class_weights has {self.class_weights.numel()} entries but the "
                f"student predicts {logits.shape[1]} classes; give one weight per class"
            )
        soft = labels.is_floating_point() and labels.dim() == logits.dim()
        labeled = ~(labels == self.ignore_index).all(dim=1) if soft else labels != self.ignore_index
        if not bool(labeled.all()):
            if reduction == "none":
                values = torch.zeros(len(logits), device=logits.device, dtype=logits.dtype)
                if bool(labeled.any()):
                    values[labeled] = self._cross_entropy_on(logits[labeled], labels[labeled], "none")
                return values
            if not bool(labeled.any()):
                return logits.sum() * 0.0  # no labelled sample: exactly zero, still part of the graph
            logits, labels = logits[labeled], labels[labeled]
        return self._cross_entropy_on(logits, labels, reduction)

    def _cross_entropy_on(self, logits: Tensor, labels: Tensor, reduction: str) -> Tensor:
        return F.cross_entropy(
            logits, labels, weight=self.class_weights, label_smoothing=self.label_smoothing, reduction=reduction
        )

    def extra_repr(self) -> str:
        return f"weight={self.weight}, label_smoothing={self.label_smoothing}"
