"""The teacher's outputs on a batch, computed by running the frozen teacher."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from distill.batch import Batch, forward_logits, forward_logits_checked
from distill.features import FeatureCapture
from distill.models.casting import CastInputs


class TeacherOnBatch(Protocol):
    """Where a training step gets the teacher's outputs: the live teacher or a :class:`TeacherOutputCache`."""

    def prefetch(self, index: Tensor | None) -> None:
        """Look up what can be looked up while the batch is still on the host (a no-op for the live teacher)."""

    def outputs(self, parts: Batch, device: torch.device, first_batch: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """The teacher's logits and the layer outputs the loss terms read, on ``device``."""


class LiveTeacher:
    """Runs the frozen teacher under ``torch.no_grad()``, in ``dtype`` when one is given (logits in float32).

    Args:
        model: the frozen teacher.
        capture: the hooks on the teacher's layers the loss terms read, or ``None``.
        dtype: the dtype the teacher's weights are kept in, or ``None`` (as they are).
    """

    def __init__(self, model: nn.Module, capture: FeatureCapture | None, dtype: torch.dtype | None) -> None:
        self.model = model
        self.capture = capture
        self.dtype = dtype

    @property
    def as_run(self) -> nn.Module:
        """The teacher as it is called: with its inputs cast to ``dtype`` when one is set."""
        return self.model if self.dtype is None else CastInputs(self.model, self.dtype)

    def prefetch(self, index: Tensor | None) -> None:
        """Nothing to look up ahead: the teacher runs in the step."""

    def outputs(self, parts: Batch, device: torch.device, first_batch: bool) -> tuple[Tensor, dict[str, Tensor]]:
        model, parts = self.as_run, parts.for_teacher()  # its own tokenization, when the batch carries one
        with torch.no_grad():
            logits = forward_logits_checked(model, parts, "teacher") if first_batch else forward_logits(model, parts)
        features = self.capture.collect() if self.capture else {}
        return (logits if self.dtype is None else logits.float()), features
