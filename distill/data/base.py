"""What every distill data module shares: loader options, batch forms, and the hooks of the teacher-output cache."""

from __future__ import annotations

import abc

from collections.abc import Callable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from distill.data.indexed import IndexedDataset
from distill.errors import DistillError

SPLITS = ("train", "val", "test")


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or a :class:`DistillError` naming ``data.<name>``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise DistillError(f"data.{name} must be a whole number, got {value!r}")
    if value < minimum:
        qualifier = "at least 1" if minimum == 1 else f"{minimum} or more"
        raise DistillError(f"data.{name} must be {qualifier}, got {value}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise DistillError(f"data.{name} must be true or false, got {value!r}")
    return value


class ClassificationDataModule(L.LightningDataModule, metaclass=abc.ABCMeta):
    """A data module of ``(x, y)`` samples in train/val/test splits.

    Subclasses implement :meth:`load_splits` (untransformed ``(x, y)`` data
    sets), :meth:`data_fingerprint`, and set ``num_classes``,
    ``train_transform`` and ``eval_transform``. This class turns them into
    loaders that yield ``(x, y)``, ``(x, y, index)``, ``x`` or
    ``{"x": x, "index": i}`` (see :func:`distill.data.indexed.batch_item`);
    ``labels`` and ``with_index`` are read when a loader is made, so they may
    be changed after construction.

    Args:
        batch_size: samples per batch (all splits).
        num_workers: data-loader worker processes (0 loads in the main process).
        labels: ``False`` yields inputs only, for distillation without labels.
        with_index: also yield each sample's index within its split.
    """

    #: the data set's name in fingerprints
    name = ""
    num_classes: int
    #: whether train batches get random transforms (subclasses with augmentation set it)
    augment = False
    train_transform: Callable[[Any], Any] | None = None
    eval_transform: Callable[[Any], Any] | None = None

    def __init__(self, batch_size: int, num_workers: int, labels: bool, with_index: bool) -> None:
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.num_workers = check_int("num_workers", num_workers, 0)
        self.labels = check_bool("labels", labels)
        self.with_index = check_bool("with_index", with_index)
        #: untransformed ``(x, y)`` data sets by split name, filled by :meth:`setup`
        self.splits: dict[str, Dataset] = {}

    @abc.abstractmethod
    def load_splits(self) -> dict[str, Dataset]:
        """The ``train``, ``val`` and ``test`` data sets of ``(x, y)`` pairs, before any transform."""

    @abc.abstractmethod
    def data_fingerprint(self) -> dict[str, Any]:
        """What determines the inputs under the evaluation transform (see :meth:`fingerprint`)."""

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load_splits()

    @property
    def random_augmentation(self) -> bool:
        """True when train batches get random transforms, so outputs computed once would go stale."""
        return bool(self.augment)

    def fingerprint(self) -> dict[str, Any]:
        """A JSON-able description of the training inputs as :meth:`cache_dataloader` yields them.

        It names what determines those inputs (data set, files, split, image
        size, normalisation) and leaves out what does not (batch size, workers,
        labels, index), so a cache of teacher outputs keyed by it stays valid
        exactly as long as the inputs stay the same.
        """
        return {"data": self.name, **self.data_fingerprint()}

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.train_transform, shuffle=True, with_index=self.with_index)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_transform, shuffle=False, with_index=self.with_index)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_transform, shuffle=False, with_index=self.with_index)

    def cache_dataloader(self) -> DataLoader:
        """The training split in a fixed order, under the evaluation transform, with sample indices.

        The indices are those :meth:`train_dataloader` yields with
        ``with_index=True``; labels are included unless ``labels=False``.
        """
        return self._loader("train", self.eval_transform, shuffle=False, with_index=True, persistent=False)

    def _loader(
        self, split: str, transform: Any, shuffle: bool, with_index: bool, persistent: bool = True
    ) -> DataLoader:
        # outside a Trainer (evaluation, the teacher-output cache) nobody else prepares the data
        self.prepare_data()
        self.setup()
        dataset = self.splits[split]
        return DataLoader(
            # labels=False trains on inputs only; validation and test keep theirs to measure the student
            IndexedDataset(dataset, transform, labels=self.labels or split != "train", with_index=with_index),
            batch_size=self.batch_size,
            shuffle=shuffle,
            # an incomplete last training batch (of one sample, say) would crash BatchNorm: dropped,
            # unless it is the only batch (a training split smaller than one batch)
            drop_last=split == "train" and shuffle and len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=persistent and self.num_workers > 0,
        )
