"""The base of every distill data module (it follows the contract of :mod:`distill.data.contract`): loader options, batch forms, the teacher-output cache's hooks."""

from __future__ import annotations

import abc

from collections.abc import Callable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from distill.data.contract import CacheableData, IndexableData, check_cacheable  # noqa: F401 (re-exported)
from distill.data.in_memory import InMemoryLoader
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


def check_in_memory(value: Any) -> bool | str:
    """``data.in_memory``: true, false or ``auto`` (in memory wherever it gives the DataLoader's batches)."""
    if not (isinstance(value, bool) or value == "auto"):
        raise DistillError(f"data.in_memory must be true, false or auto, got {value!r}")
    return value


class DistillDataModule(L.LightningDataModule, metaclass=abc.ABCMeta):
    """The base the run relies on: ``num_classes``, the loader options, and the teacher-output cache's hooks.

    It follows every Protocol of :mod:`distill.data.contract`: ``num_classes``, ``with_index`` (settable: the run switches it on for terms
    that read sample indices), ``labels``, ``random_augmentation``,
    :meth:`fingerprint` and :meth:`cache_dataloader` (:class:`CacheableData`).
    Subclasses implement :meth:`load_splits`, :meth:`data_fingerprint` and
    :meth:`make_loader`; ``labels`` and ``with_index`` are read when a loader
    is made, so they may be changed after construction. A plain
    ``LightningDataModule`` with a ``num_classes`` attribute also trains; it
    gets none of these options.

    Args:
        batch_size: samples per batch (all splits).
        num_workers: data-loader worker processes (0 loads in the main process).
        labels: ``False`` yields inputs only, for distillation without labels.
        with_index: also yield each sample's index within its split.
        in_memory: keep each split whole as tensors (on the training device) and draw
            batches by indexing them (:class:`~distill.data.in_memory.InMemoryLoader`),
            with augmentation done on the batch (``batch_train_transform``); for data
            sets held as tensors that fit in memory. Not under DDP. ``"auto"``: in memory
            for each split where that gives the DataLoader's very batches (held as tensors,
            no workers, one process, no random augmentation), a ``DataLoader`` elsewhere.
    """

    #: the data set's name in fingerprints
    name = ""
    num_classes: int
    #: whether train batches get random transforms (subclasses with augmentation set it)
    augment = False
    #: an optional pool of unlabelled training inputs and its share of each batch (distill.data.unlabeled)
    unlabeled: Any = None
    unlabeled_fraction: float | None = None

    def __init__(
        self, batch_size: int, num_workers: int, labels: bool, with_index: bool, in_memory: bool | str = False
    ) -> None:
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.num_workers = check_int("num_workers", num_workers, 0)
        self.labels = check_bool("labels", labels)
        self.with_index = check_bool("with_index", with_index)
        self.in_memory = check_in_memory(in_memory)
        #: the data sets by split name, filled by :meth:`setup`
        self.splits: dict[str, Dataset] = {}

    @abc.abstractmethod
    def load_splits(self) -> dict[str, Dataset]:
        """The ``train``, ``val`` and ``test`` data sets, before any transform."""

    @abc.abstractmethod
    def data_fingerprint(self) -> dict[str, Any]:
        """What determines the inputs under the evaluation transform (see :meth:`fingerprint`)."""

    @abc.abstractmethod
    def make_loader(self, split: str, shuffle: bool, with_index: bool, for_cache: bool = False) -> DataLoader:
        """The loader of ``split``; ``for_cache``: the training split under the evaluation transform, no persistent workers."""

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load_splits()

    def input_description(self) -> dict[str, Any]:
        """What a fresh process needs to feed an exported model: the raw input, the steps (with their numbers) that
        turn it into the model's input, and the class names (``distill.export`` writes it beside the model).

        Data modules with a fixed preprocessing override it; this default says only what every module knows.
        """
        names = getattr(self, "class_names", None) or getattr(self, "classes", None)
        return {"raw_input": None, "preprocessing": None, "class_names": [str(n) for n in names] if names else None}

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
        if self.unlabeled is not None:
            from distill.data.unlabeled import partly_labeled_loader

            self.prepare_data()
            self.setup()
            return partly_labeled_loader(self)
        return self.make_loader("train", shuffle=True, with_index=self.with_index)

    def val_dataloader(self) -> DataLoader:
        return self.make_loader("val", shuffle=False, with_index=self.with_index)

    def test_dataloader(self) -> DataLoader:
        return self.make_loader("test", shuffle=False, with_index=self.with_index)

    def cache_dataloader(self) -> DataLoader:
        """The training split in a fixed order, under the evaluation transform, with sample indices.

        The indices are those :meth:`train_dataloader` yields with
        ``with_index=True``; labels are included unless ``labels=False``.
        """
        return self.make_loader("train", shuffle=False, with_index=True, for_cache=True)


class ClassificationDataModule(DistillDataModule):
    """A :class:`DistillDataModule` of ``(x, y)`` samples in train/val/test splits.

    Subclasses implement :meth:`load_splits` (untransformed ``(x, y)`` data
    sets), :meth:`data_fingerprint`, and set ``num_classes``,
    ``train_transform`` and ``eval_transform``. This class turns them into
    loaders that yield ``(x, y)``, ``(x, y, index)``, ``x`` or
    ``{"x": x, "index": i}`` (see :func:`distill.data.indexed.batch_item`).

    Args:
        batch_size: samples per batch (all splits).
        num_workers: data-loader worker processes (0 loads in the main process).
        labels: ``False`` yields inputs only, for distillation without labels.
        with_index: also yield each sample's index within its split.
    """

    train_transform: Callable[[Any], Any] | None = None
    eval_transform: Callable[[Any], Any] | None = None
    #: the train transform applied to a whole batch tensor (with ``in_memory``; ``None``: the
    #: eval transform, which must then take batches too)
    batch_train_transform: Callable[[Any], Any] | None = None

    def make_loader(self, split: str, shuffle: bool, with_index: bool, for_cache: bool = False) -> DataLoader:
        # outside a Trainer (evaluation, the teacher-output cache) nobody else prepares the data
        self.prepare_data()
        self.setup()
        if not for_cache and self._draws_in_memory(split):  # the teacher-output cache's loader stays a DataLoader
            return self._in_memory_loader(split, shuffle, with_index)
        transform = self.train_transform if split == "train" and not for_cache else self.eval_transform
        dataset = self.splits[split]
        return DataLoader(
            # labels=False trains on inputs only; validation and test keep theirs to measure the student
            IndexedDataset(dataset, transform, labels=self.labels or split != "train", with_index=with_index),
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=self._drops_last(split, shuffle, dataset),
            num_workers=self.num_workers,
            persistent_workers=not for_cache and self.num_workers > 0,
        )

    def _drops_last(self, split: str, shuffle: bool, dataset: Dataset) -> bool:
        # an incomplete last training batch (of one sample, say) would crash BatchNorm: dropped,
        # unless it is the only batch (a training split smaller than one batch)
        return split == "train" and shuffle and len(dataset) >= self.batch_size

    def _draws_in_memory(self, split: str) -> bool:
        """``in_memory`` for ``split``; ``"auto"``: only where the batches are the DataLoader's (no refusal)."""
        if self.in_memory != "auto":
            return bool(self.in_memory)
        from distill.data.tensor_dataset import TensorClassificationDataset

        trainer = self.trainer
        return (
            isinstance(self.splits[split], TensorClassificationDataset)
            and self.num_workers == 0
            and (trainer is None or trainer.world_size == 1)
            and not (split == "train" and self.random_augmentation)
        )

    def _in_memory_loader(self, split: str, shuffle: bool, with_index: bool) -> InMemoryLoader:
        from distill.data.tensor_dataset import TensorClassificationDataset

        data = self.splits[split]
        if not isinstance(data, TensorClassificationDataset):
            raise DistillError(
                f"data.in_memory=true needs the splits held as tensors, but {self.name or type(self).__name__}'s "
                f"{split} split is a {type(data).__name__}; set data.in_memory=false"
            )
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            raise DistillError(
                f"data.in_memory=true does not shard the data over {trainer.world_size} processes; "
                "set data.in_memory=false under DDP"
            )
        transform = self.eval_transform
        if split == "train" and self.random_augmentation:
            if self.batch_train_transform is None:
                raise DistillError(
                    f"data.in_memory=true has no batch form of {self.name or type(self).__name__}'s augmentation; "
                    "set data.augment=false or data.in_memory=false"
                )
            transform = self.batch_train_transform
        return InMemoryLoader(
            data.inputs,
            data.labels,
            self.batch_size,
            shuffle=shuffle,
            transform=transform,
            labels_out=self.labels or split != "train",
            with_index=with_index,
            device=trainer.strategy.root_device if trainer is not None else "cpu",
            drop_last=self._drops_last(split, shuffle, data),
        )
