"""Inputs without labels next to the labelled training set: partly-labelled batches.

A data module with ``unlabeled`` set yields training batches ``(x, y)`` in which the samples
without a label carry :data:`IGNORE_INDEX` (``-100``, as ``F.cross_entropy`` ignores): logit and
feature terms see every sample, label terms only the labelled ones (see
:mod:`distill.partial_labels`). With ``labels=False`` every training sample is unlabelled and
the batches are inputs only ("teacher trained elsewhere, student's data unlabelled").

Pools (``data.unlabeled=``):

- :class:`HiddenLabels`: a fraction of the training split keeps its labels, the rest is unlabelled;
- :class:`DataSetInputs`: another data module's training inputs;
- ``generator`` (or :class:`distill.data.mnist1d.MNIST1DGenerated`): fresh inputs from the data
  set's own generator, for data modules that have one (``default_pool``).

``unlabeled_fraction`` sets the share of each batch drawn from the unlabelled part; ``None``
shuffles all training samples together (the natural share). An epoch is one pass over the
labelled part.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from distill.data.indexed import IndexedDataset
from distill.errors import DistillError
from distill.partial_labels import IGNORE_INDEX


#: an unlabelled pool with sample indices (the loader's and the run's early check's one line)
POOL_WITH_INDEX = (
    "data.unlabeled cannot be combined with sample indices (teacher.cache=true or terms such as crd "
    "index the training split only); set teacher.cache=false or drop the index-reading term"
)

class HiddenLabels:
    """Keep the labels of ``labeled_fraction`` of the training split (seeded), hide the others'."""

    def __init__(self, labeled_fraction: float, seed: int = 0) -> None:
        if not 0.0 < float(labeled_fraction) < 1.0:
            raise DistillError(
                f"data.unlabeled.labeled_fraction must be in (0, 1), got {labeled_fraction}; e.g. 0.1 keeps 10 % of the labels"
            )
        self.labeled_fraction = float(labeled_fraction)
        self.seed = int(seed)

    def hidden(self, num_samples: int) -> Tensor:
        """A boolean mask over the training split: True where the label is hidden."""
        keep = max(1, round(self.labeled_fraction * num_samples))
        order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(self.seed))
        mask = torch.ones(num_samples, dtype=torch.bool)
        mask[order[:keep]] = False
        return mask

    def fingerprint(self) -> dict[str, Any]:
        return {"pool": "hidden labels", "labeled_fraction": self.labeled_fraction, "seed": self.seed}


class DataSetInputs:
    """The training inputs of another data module (its labels are dropped), under its training transform."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def inputs(self, datamodule: Any) -> Dataset:
        self.data.prepare_data()
        self.data.setup()
        return IndexedDataset(self.data.splits["train"], self.data.train_transform, labels=False)

    def fingerprint(self) -> dict[str, Any]:
        return {"pool": "data set inputs", "data": self.data.fingerprint()}


def attach_pool(datamodule: Any, unlabeled: Any, unlabeled_fraction: float | None) -> None:
    """Check and set a data module's ``unlabeled`` pool and ``unlabeled_fraction``."""
    if isinstance(unlabeled, str):
        if unlabeled != "generator" or not hasattr(datamodule, "default_pool"):
            raise DistillError(
                f"data.unlabeled={unlabeled!r} is not a pool this data set knows; give 'generator' (data sets "
                "with a generator, e.g. data=mnist1d) or a pool config such as "
                "{_target_: distill.data.unlabeled.HiddenLabels, labeled_fraction: 0.1}"
            )
        unlabeled = datamodule.default_pool()
    if unlabeled is not None and not (hasattr(unlabeled, "inputs") or isinstance(unlabeled, HiddenLabels)):
        raise DistillError(
            f"data.unlabeled is a {type(unlabeled).__name__}, not a pool; give HiddenLabels, DataSetInputs "
            "or another object with inputs(datamodule)"
        )
    if unlabeled_fraction is not None:
        if unlabeled is None:
            raise DistillError("data.unlabeled_fraction is set but data.unlabeled is not; give a pool or leave it null")
        if not 0.0 < float(unlabeled_fraction) < 1.0:
            raise DistillError(
                f"data.unlabeled_fraction must be in (0, 1) (the share of each batch without labels), got {unlabeled_fraction}"
            )
        unlabeled_fraction = float(unlabeled_fraction)
    datamodule.unlabeled = unlabeled
    datamodule.unlabeled_fraction = unlabeled_fraction


class PartlyLabeledDataset(Dataset):
    """The training split (some labels hidden) followed by a pool of inputs; yields ``(x, y)`` or ``x``."""

    def __init__(self, train: Dataset, hidden: Tensor | None, pool: Any, labels: bool) -> None:
        self.train, self.pool, self.labels = train, pool, labels
        self.hidden = torch.zeros(len(train), dtype=torch.bool) if hidden is None else hidden
        self.num_train = len(train)

    def __len__(self) -> int:
        return self.num_train + (0 if self.pool is None else len(self.pool))

    def __getitem__(self, i: int) -> Any:
        if i < self.num_train:
            x, y = self.train[i]
            y = torch.as_tensor(IGNORE_INDEX if self.hidden[i] else y)
        else:
            x, y = self.pool[i - self.num_train], torch.tensor(IGNORE_INDEX)
        return (x, y) if self.labels else x

    def groups(self) -> tuple[Tensor, Tensor]:
        """Indices of the labelled samples and of the unlabelled ones."""
        train = torch.arange(self.num_train)
        unlabeled = torch.cat([train[self.hidden], torch.arange(self.num_train, len(self))])
        return train[~self.hidden], unlabeled


class MixedBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size`` with ``round(batch_size * fraction)`` unlabelled samples each.

    One epoch passes once over the labelled indices (shuffled); the unlabelled ones are drawn
    in shuffled passes that carry on across epochs.
    """

    def __init__(self, labeled: Tensor, unlabeled: Tensor, batch_size: int, fraction: float) -> None:
        self.labeled, self.unlabeled = labeled, unlabeled
        self.num_unlabeled = min(batch_size - 1, max(1, round(batch_size * fraction)))
        self.num_labeled = batch_size - self.num_unlabeled
        self._pool_order: list[int] = []

    def __len__(self) -> int:
        return math.ceil(len(self.labeled) / self.num_labeled)

    def _draw_unlabeled(self, n: int, generator: torch.Generator) -> list[int]:
        while len(self._pool_order) < n:
            self._pool_order += self.unlabeled[torch.randperm(len(self.unlabeled), generator=generator)].tolist()
        drawn, self._pool_order = self._pool_order[:n], self._pool_order[n:]
        return drawn

    def __iter__(self) -> Iterator[list[int]]:
        # seeded from torch's global generator, as RandomSampler is, so seed_everything fixes it
        generator = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        labeled = self.labeled[torch.randperm(len(self.labeled), generator=generator)].tolist()
        for start in range(0, len(labeled), self.num_labeled):
            yield labeled[start : start + self.num_labeled] + self._draw_unlabeled(self.num_unlabeled, generator)


def partly_labeled_dataset(datamodule: Any) -> PartlyLabeledDataset:
    """The data module's training split plus its pool, as one data set."""
    if datamodule.with_index:
        raise DistillError(POOL_WITH_INDEX)
    pool = datamodule.unlabeled
    train = IndexedDataset(datamodule.splits["train"], datamodule.train_transform)
    if isinstance(pool, HiddenLabels):
        return PartlyLabeledDataset(train, pool.hidden(len(train)), None, datamodule.labels)
    inputs = pool.inputs(datamodule)
    if isinstance(inputs, Tensor):
        inputs = _TensorInputs(inputs)
    _check_pool_shape(inputs, train)
    return PartlyLabeledDataset(train, None, inputs, datamodule.labels)


def _check_pool_shape(pool: Dataset, train: Dataset) -> None:
    """One line, not the collate's "stack expects each tensor to be equal size", when the pool's inputs are another shape."""
    if not len(pool) or not len(train):
        return
    sample, (x, _) = pool[0], train[0]
    if isinstance(sample, Tensor) and isinstance(x, Tensor) and sample.shape != x.shape:
        raise DistillError(
            f"data.unlabeled: the pool's inputs have shape {tuple(sample.shape)} but the training inputs "
            f"{tuple(x.shape)}; give the pool the training data's input size (for a data module: its image_size, channels)"
        )


def partly_labeled_loader(datamodule: Any) -> DataLoader:
    """The training loader of a data module with an unlabelled pool (see the module's docstring)."""
    dataset = partly_labeled_dataset(datamodule)
    loader = {"num_workers": datamodule.num_workers, "persistent_workers": datamodule.num_workers > 0}
    if datamodule.unlabeled_fraction is None:
        return DataLoader(dataset, batch_size=datamodule.batch_size, shuffle=True, **loader)
    labeled, unlabeled = dataset.groups()
    if len(labeled) == 0 or len(unlabeled) == 0:
        raise DistillError(
            f"data.unlabeled_fraction needs labelled and unlabelled training samples, got {len(labeled)} "
            f"and {len(unlabeled)}; leave data.unlabeled_fraction null"
        )
    sampler = MixedBatchSampler(labeled, unlabeled, datamodule.batch_size, datamodule.unlabeled_fraction)
    return DataLoader(dataset, batch_sampler=sampler, **loader)


class _TensorInputs(Dataset):
    def __init__(self, inputs: Tensor) -> None:
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> Tensor:
        return self.inputs[i]
