"""A loader that holds a whole split as tensors and draws batches by indexing: no workers, no per-sample Python."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor


class InMemoryLoader:
    """Batches of a split kept whole in memory (on the training device, if given one).

    Yields the batch forms of :func:`distill.data.indexed.batch_item` as a ``DataLoader``
    collates them: ``[x, y]``, ``[x, y, index]``, ``x`` or ``{"x": x, "index": index}``. With ``shuffle`` each pass
    draws its order from torch's global random generator exactly as a ``DataLoader`` with
    ``shuffle=True`` and ``num_workers=0`` does (one draw for the loader's base seed, one
    seeding a ``randperm``; unshuffled, the first alone), so for the same seed both give the same batches and leave the
    generator in the same state. ``transform`` acts on the whole batch tensor.

    Args:
        inputs, labels: the split's tensors (``labels`` may be ``None``).
        batch_size: samples per batch; the last batch may be smaller.
        shuffle: a new random order on every pass.
        transform: called on each batch of inputs (random augmentation or the
            evaluation transform), or ``None``.
        labels_out: yield labels (``False``: inputs only, for distillation without labels).
        with_index: also yield each sample's index within the split (kept on the CPU, so
            that a teacher-output cache reads its rows without waiting for the device).
        device: where the tensors are kept and the batches made.
        drop_last: leave out an incomplete last batch (as the ``DataLoader`` option).
    """

    def __init__(
        self,
        inputs: Tensor,
        labels: Tensor | None,
        batch_size: int,
        shuffle: bool,
        transform: Callable[[Tensor], Tensor] | None = None,
        labels_out: bool = True,
        with_index: bool = False,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
    ) -> None:
        if labels is not None and len(labels) != len(inputs):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.device = torch.device(device)
        self.inputs = inputs.to(self.device)
        self.labels = None if labels is None else labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.transform = transform
        self.labels_out = labels_out and labels is not None
        self.with_index = with_index
        self.drop_last = drop_last

    def __len__(self) -> int:
        batches = len(self.inputs) / self.batch_size
        return math.floor(batches) if self.drop_last else math.ceil(batches)

    def order(self) -> Tensor:
        """The sample order of one pass (a CPU tensor), drawn as a shuffling ``DataLoader`` draws it."""
        n = len(self.inputs)
        torch.empty((), dtype=torch.int64).random_()  # the DataLoader iterator's base seed, drawn even unshuffled
        if not self.shuffle:
            return torch.arange(n)
        generator = torch.Generator()
        generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))  # RandomSampler's seed
        return torch.randperm(n, generator=generator)

    def __iter__(self) -> Iterator[Any]:
        order = self.order()
        on_device = order.to(self.device, non_blocking=True)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index, rows = order[start : start + self.batch_size], on_device[start : start + self.batch_size]
            x = self.inputs[rows]
            if self.transform is not None:
                x = self.transform(x)
            yield self._batch(x, rows, index)

    def _batch(self, x: Tensor, rows: Tensor, index: Tensor) -> Any:
        if not self.labels_out:
            return {"x": x, "index": index} if self.with_index else x
        y = self.labels[rows]
        return [x, y, index] if self.with_index else [x, y]  # lists, as the DataLoader collates tuples
