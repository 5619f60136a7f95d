"""Run a model whose weights are in half precision on float32 inputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class CastInputs(nn.Module):
    """Calls ``model`` with its floating-point inputs cast to ``dtype`` and returns float32 logits.

    For a teacher kept in bfloat16/float16 weights to halve its memory: the data
    and the losses stay in float32, only the teacher's arithmetic is in ``dtype``.
    Non-tensor outputs (a Hugging Face output object, a tuple) are returned as they are.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = self.model(*map(self._cast, args), **{k: self._cast(v) for k, v in kwargs.items()})
        return output.float() if isinstance(output, Tensor) else output

    def _cast(self, value: Any) -> Any:
        return value.to(self.dtype) if isinstance(value, Tensor) and value.is_floating_point() else value


def on_float32_inputs(model: nn.Module) -> nn.Module:
    """``model`` as the report calls it, on the data's float32 inputs: wrapped in :class:`CastInputs` when its weights
    are in half precision (a run under ``trainer.precision=bf16-true`` or ``16-true`` casts both models), else itself."""
    if isinstance(model, CastInputs):
        return model
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return model if dtype in (None, torch.float32, torch.float64) else CastInputs(model, dtype)
