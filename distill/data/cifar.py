"""CIFAR-10 and CIFAR-100: the KD literature's small-image benchmarks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from distill.data.base import ClassificationDataModule, check_bool, check_int
from distill.data.batch_crop_flip import BatchRandomCropFlip
from distill.data.cifar_files import (
    CIFAR10_FILES,
    CIFAR100_FILES,
    CIFARFiles,
    check_present,
    download_files,
    read_split,
)
from distill.data.tensor_dataset import TensorClassificationDataset
from distill.errors import DistillError


class CIFARDataModule(ClassificationDataModule):
    """A CIFAR variant read from torchvision's files (see :class:`CIFAR10DataModule`)."""

    files: CIFARFiles
    #: per-channel mean and standard deviation of the training images' pixels in [0, 1]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels = 3

    def __init__(
        self,
        root: str | os.PathLike,
        download: bool = False,
        batch_size: int = 64,
        num_workers: int = 0,
        augment: bool = True,
        val_size: int = 5000,
        split_seed: int = 0,
        image_size: int = 32,
        labels: bool = True,
        with_index: bool = False,
        in_memory: bool | str = False,
    ) -> None:
        super().__init__(batch_size, num_workers, labels, with_index, in_memory)
        self.root = Path(os.fspath(root)).expanduser().resolve()
        self.download = check_bool("download", download)
        self.augment = check_bool("augment", augment)
        self.val_size = check_int("val_size", val_size, 0)
        self.split_seed = check_int("split_seed", split_seed, 0)
        self.image_size = check_int("image_size", image_size, 8)
        if not self.download:
            check_present(self.files, self.root)  # fail at construction, before any training
        # pixels stay uint8 until after the random crop and flip, which are cheaper on bytes
        to_input = [v2.ToDtype(torch.float32, scale=True)]
        if self.image_size != 32:
            to_input.append(v2.Resize(self.image_size, antialias=True))
        to_input.append(v2.Normalize(self.mean, self.std))
        self.eval_transform = v2.Compose(to_input)
        self.train_transform = (
            v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), *to_input])
            if self.augment
            else self.eval_transform
        )
        # with data.in_memory=true: the same steps on a whole uint8 batch
        self.batch_train_transform = v2.Compose([BatchRandomCropFlip(padding=4), *to_input])

    def prepare_data(self) -> None:
        if self.download:
            download_files(self.files, self.root)

    def load_splits(self) -> dict[str, Dataset]:
        images, targets = read_split(self.files, self.root, "train")
        test = TensorClassificationDataset(*read_split(self.files, self.root, "test"))
        n = len(targets)
        if self.val_size >= n:
            raise DistillError(
                f"data.val_size={self.val_size} leaves no training images ({self.files.title} in {self.root} "
                f"has {n}); use a smaller data.val_size (0 validates on the test set)"
            )
        if self.val_size == 0:
            return {"train": TensorClassificationDataset(images, targets), "val": test, "test": test}
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        # sorted, so each split keeps the files' order
        val, train = order[: self.val_size].sort().values, order[self.val_size :].sort().values
        return {
            "train": TensorClassificationDataset(images[train], targets[train]),
            "val": TensorClassificationDataset(images[val], targets[val]),
            "test": test,
        }

    def input_description(self) -> dict[str, Any]:
        steps = ["pixels as float32 in [0, 1] (uint8 / 255), channels first: [B, 3, 32, 32]"]
        if self.image_size != 32:
            steps.append(f"resize to {self.image_size}x{self.image_size}: torchvision.transforms.v2.Resize(antialias=True)")
        steps.append(f"normalise per channel: (x - mean) / std, mean {list(self.mean)}, std {list(self.std)}")
        return {
            "raw_input": f"32x32 RGB images ({self.files.title}), uint8",
            "preprocessing": steps, "mean": list(self.mean), "std": list(self.std),
            "resize": {"size": [self.image_size, self.image_size], "antialias": True} if self.image_size != 32 else None,
            "image_size": self.image_size, "channels": 3, "class_names": None,
        }

    def data_fingerprint(self) -> dict[str, Any]:
        self.prepare_data()
        check_present(self.files, self.root)
        stats = {}
        for name in self.files.names("train"):
            stat = (self.root / self.files.folder / name).stat()
            stats[name] = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        return {
            "root": str(self.root),
            "files": stats,
            "val_size": self.val_size,
            "split_seed": self.split_seed,
            "image_size": self.image_size,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }


class CIFAR10DataModule(CIFARDataModule):
    """CIFAR-10: 50,000 training and 10,000 test images, 32×32 RGB, 10 classes.

    Read from ``root/cifar-10-batches-py/`` (torchvision's layout; with
    ``download=True`` torchvision's downloader fetches it there first). Train
    batches get the standard augmentation (random 32×32 crop of the image
    padded by 4, horizontal flip); all splits are scaled to [0, 1] and
    normalised with the training set's per-channel mean and std.

    Args:
        root: the directory that holds ``cifar-10-batches-py/``.
        download: fetch the files when they are missing (needs internet).
        batch_size: samples per batch (all splits).
        num_workers: data-loader worker processes (0 loads in the main process).
        augment: random crop and flip for training; ``False`` trains on the
            images as they are.
        val_size: training images held out for validation, chosen at random
            with ``split_seed``; 0 trains on all 50,000 and validates on the
            test set, as the KD papers' recipes do (the best checkpoint is
            then chosen on the test set).
        split_seed: seed of that choice.
        image_size: side of the images the models see (resized after
            augmentation when not 32).
        labels: ``False`` yields inputs only, for distillation without labels.
        with_index: also yield each sample's index within its split.
        in_memory: keep the uint8 images whole as tensors (on the training device) and
            draw batches by indexing, cropping and flipping the whole batch at once
            (the same distribution as per-image augmentation, not the same draws).
    """

    name = "cifar10"
    files = CIFAR10_FILES
    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)


class CIFAR100DataModule(CIFARDataModule):
    """CIFAR-100: as :class:`CIFAR10DataModule`, with 100 classes (the fine labels), read from ``root/cifar-100-python/``."""

    name = "cifar100"
    files = CIFAR100_FILES
    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
