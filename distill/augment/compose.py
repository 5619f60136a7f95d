"""Augmentations in sequence (:class:`Compose`) or one of several per batch (:class:`OneOf`)."""

from __future__ import annotations

import torch
from torch import Tensor

from distill.augment.batch_views import BatchAugment
from distill.errors import DistillError


def _steps(steps: list[BatchAugment], owner: str, num_classes: int | None) -> list[BatchAugment]:
    steps = list(steps)
    if not steps or not all(isinstance(s, BatchAugment) for s in steps):
        raise DistillError(f"{owner} needs a non-empty list of batch augmentations (distill.augment), got {steps!r}")
    for step in steps:
        if getattr(step, "num_classes", 0) is None:
            step.num_classes = num_classes
    return steps


class Compose(BatchAugment):
    """Apply ``steps`` in order (e.g. a crop, then mixup)."""

    def __init__(self, steps: list[BatchAugment], num_classes: int | None = None) -> None:
        self.steps = _steps(steps, "Compose", num_classes)
        self.mixes_labels = any(s.mixes_labels for s in self.steps)

    def apply(self, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        for step in self.steps:
            x, labels = step.apply(x, labels)
        return x, labels

    def __repr__(self) -> str:
        return f"Compose({self.steps})"


class OneOf(BatchAugment):
    """Apply one of ``steps``, drawn uniformly for each batch (e.g. mixup or cutmix)."""

    def __init__(self, steps: list[BatchAugment], num_classes: int | None = None) -> None:
        self.steps = _steps(steps, "OneOf", num_classes)
        self.mixes_labels = any(s.mixes_labels for s in self.steps)

    def apply(self, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        step = self.steps[int(torch.randint(len(self.steps), ()))]
        x, labels = step.apply(x, labels)
        if self.mixes_labels and labels is not None and not step.mixes_labels:
            from distill.augment.soft_labels import soft_targets

            labels = soft_targets(labels, getattr(step, "num_classes", None) or self._num_classes())
        return x, labels

    def _num_classes(self) -> int | None:
        return next((s.num_classes for s in self.steps if getattr(s, "num_classes", None)), None)

    def __repr__(self) -> str:
        return f"OneOf({self.steps})"
