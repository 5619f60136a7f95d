"""An in-memory data set of input tensors with optional labels and sample indices."""

from __future__ import annotations

from torch import Tensor
from torch.utils.data import Dataset

from distill.data.indexed import batch_item


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
        y = None if self.labels is None else self.labels[i]
        return batch_item(self.inputs[i], y, i, labels=self.labels is not None, with_index=self.with_index)
