"""A wrapper that keeps some of a classifier's outputs, in a given order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from distill.batch import output_logits


class SelectClasses(nn.Module):
    """Wraps ``model`` so that its logits are ``model_logits[:, indices]``.

    Maps a classifier trained on other labels onto the data's classes: data
    class ``c`` reads the model's output ``indices[c]``. The wrapped model sits
    under ``model.``, so its layer names gain that prefix (``model.bert.encoder.layer.1``).

    Args:
        model: any classifier whose output holds logits (a tensor, a tuple
            starting with them, or an object/dict with ``logits``).
        indices: the model's output index for each data class.
    """

    def __init__(self, model: nn.Module, indices: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        # a buffer moves with the model between devices; not persistent, so state_dicts stay the model's
        self.register_buffer("indices", torch.tensor([int(i) for i in indices], dtype=torch.long), persistent=False)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return output_logits(self.model(*args, **kwargs)).index_select(-1, self.indices)

    def extra_repr(self) -> str:
        return f"indices={self.indices.tolist()}"
