"""The batch items distill's data modules yield: ``x``, ``(x, y)``, ``(x, y, index)`` or ``{"x", "index"}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset


def batch_item(x: Any, y: Any, index: int, labels: bool = True, with_index: bool = False) -> Any:
    """One sample in the form :func:`distill.batch.split_batch` reads.

    ``(x, y)`` or ``(x, y, index)`` with labels; without them ``x`` alone or
    ``{"x": x, "index": index}``, since a tuple ``(x, index)`` would read as
    ``(x, label)``.
    """
    if not labels:
        return {"x": x, "index": torch.tensor(index)} if with_index else x
    return (x, y, torch.tensor(index)) if with_index else (x, y)


class IndexedDataset(Dataset):
    """A view of a map-style data set of ``(x, y)`` pairs that yields :func:`batch_item` forms.

    Args:
        dataset: any data set whose items are ``(x, y)``.
        transform: applied to ``x`` on every access (random augmentation or the
            deterministic evaluation transform); ``None`` leaves ``x`` as it is.
        labels: ``False`` drops ``y``, for distillation without labels.
        with_index: also yield the sample's position in ``dataset``.
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: Callable[[Any], Any] | None = None,
        labels: bool = True,
        with_index: bool = False,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.labels = labels
        self.with_index = with_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        x, y = self.dataset[i]
        if self.transform is not None:
            x = self.transform(x)
        return batch_item(x, y, i, self.labels, self.with_index)
