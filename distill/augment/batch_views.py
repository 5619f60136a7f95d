"""What every batch augmentation shares: it reads and rebuilds distill's batch forms.

An augmentation is called on a whole training batch, on its device, before either model
runs, so the teacher's targets are computed on the student's exact view (function
matching, Beyer et al., CVPR 2022).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from distill.batch import INDEX_KEY, LABEL_KEY
from distill.errors import DistillError


#: teacher.cache=true with a batch augmentation (augment=...): the module's and the run's early check's one line
CACHE_WITH_BATCH_AUGMENT = (
    "teacher.cache=true reads the teacher's outputs on the un-augmented training inputs, but "
    "batch augmentation gives both models new views every step; set teacher.cache=false or augment=null"
)

class BatchAugment(metaclass=abc.ABCMeta):
    """Turns a batch ``x``, ``(x, y[, index])`` or ``{"x": ..., "labels": ...}`` into an augmented one.

    Subclasses implement :meth:`apply` on the input tensor and the labels (``None`` without
    labels). ``mixes_labels`` says whether the labels come back as mixed soft targets.
    """

    #: the labels come back as soft targets ``[N, num_classes]`` (mixup, cutmix)
    mixes_labels: bool = False

    def for_classes(self, num_classes: int) -> BatchAugment:
        """Set the number of classes where the augmentation needs it and was not given one; returns self."""
        if getattr(self, "num_classes", 0) is None:
            self.num_classes = num_classes
        for step in getattr(self, "steps", ()):
            step.for_classes(num_classes)
        return self

    @abc.abstractmethod
    def apply(self, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The augmented inputs and labels."""

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, Tensor):
            return self.apply(batch, None)[0]
        if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 3:
            labels = batch[1] if len(batch) >= 2 else None
            x, labels = self.apply(batch[0], labels)
            return type(batch)([x, labels, *batch[2:]][: len(batch)]) if len(batch) >= 2 else type(batch)([x])
        if isinstance(batch, Mapping):
            inputs = [k for k in batch if k not in (LABEL_KEY, INDEX_KEY)]
            if len(inputs) == 1 and isinstance(batch[inputs[0]], Tensor) and batch[inputs[0]].is_floating_point():
                x, labels = self.apply(batch[inputs[0]], batch.get(LABEL_KEY))
                out = {**batch, inputs[0]: x}
                if labels is not None:
                    out[LABEL_KEY] = labels
                return out
        raise DistillError(
            f"{type(self).__name__} augments batches with one floating-point input tensor (images, signals, "
            "features); this batch has other inputs (e.g. token ids): set augment=null"
        )
