"""An in-memory data set of input tensors with optional labels and sample indices."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


class TensorClassificationDataset(Dataset):
    """Yields ``x``, ``(x, y)`` or ``(x, y, index)`` (labels and index optional).

    Without labels it yields ``x`` alone or ``{"x": x, "index": i}`` with an index,
    since a tuple ``(x, index)`` would read as ``(x, label)``.
    """

    def __init__(self, inputs: Tensor, labels: Tensor | None = None, with_index: bool = False) -> None:
        if labels is not None and len(labels) != len(inputs):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs = inputs
        self.labels = labels
        self.with_index = with_index

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int):
        x = self.inputs[i]
        if self.labels is None:
            return {"x": x, "index": torch.tensor(i)} if self.with_index else x
        if self.with_index:
            return x, self.labels[i], torch.tensor(i)
        return x, self.labels[i]
