"""Your own images in the ImageNet layout: ``root/train/<class>/*.jpg``, ``root/val/<class>/*.jpg``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import (
    IMG_EXTENSIONS,
    find_classes,
    has_file_allowed_extension,
)
from torchvision.transforms import v2

from distill.data.base import ClassificationDataModule, check_bool, check_int
from distill.errors import DistillError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUT = "train/<class>/<image> and val/<class>/<image> (ImageNet layout; test/ is optional)"


class ImageFolderDataModule(ClassificationDataModule):
    """Images sorted into one folder per class, one such tree per split.

    ``root/train/`` and ``root/val/`` are required, ``root/test/`` is
    optional (without it the validation images are also the test split).
    Every split must have the same class folders; their sorted names are the
    classes ``0..num_classes-1``. Files with the usual image extensions (jpg,
    png, ...) are read with PIL and converted to RGB.

    Training uses a random resized crop and a horizontal flip; evaluation
    resizes the shorter side to ``eval_resize`` and takes the central
    ``image_size`` square. Both normalise with ImageNet's mean and std.

    Args:
        root: the directory that holds ``train/`` and ``val/``.
        batch_size: samples per batch (all splits).
        num_workers: data-loader worker processes (0 loads in the main process).
        image_size: side of the square crops the models see.
        eval_resize: shorter side before the central crop; ``None`` is
            ``image_size × 256 / 224`` (256 for 224).
        augment: random crop and flip for training; ``False`` trains on the
            evaluation crops.
        labels: ``False`` yields inputs only, for distillation without labels.
        with_index: also yield each sample's index within its split.
    """

    name = "image_folder"
    channels = 3
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        root: str | os.PathLike,
        batch_size: int = 64,
        num_workers: int = 0,
        image_size: int = 224,
        eval_resize: int | None = None,
        augment: bool = True,
        labels: bool = True,
        with_index: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, labels, with_index)
        self.root = Path(os.fspath(root)).expanduser().resolve()
        self.image_size = check_int("image_size", image_size, 8)
        if eval_resize is None:
            eval_resize = round(self.image_size * 256 / 224)
        self.eval_resize = check_int("eval_resize", eval_resize, self.image_size)
        self.augment = check_bool("augment", augment)
        self.split_dirs = split_folders(self.root)
        self.classes = common_classes(self.split_dirs)
        self.num_classes = len(self.classes)
        for folder in dict.fromkeys(self.split_dirs.values()):
            check_has_images(folder, self.classes)
        to_input = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
        self.eval_transform = v2.Compose(
            [v2.Resize(self.eval_resize, antialias=True), v2.CenterCrop(self.image_size), *to_input]
        )
        self.train_transform = (
            v2.Compose([v2.RandomResizedCrop(self.image_size, antialias=True), v2.RandomHorizontalFlip(), *to_input])
            if self.augment
            else self.eval_transform
        )

    def load_splits(self) -> dict[str, Dataset]:
        # one scan per folder: without test/, val/ is read once and serves both splits
        scanned = {folder: ImageFolder(str(folder), allow_empty=True) for folder in dict.fromkeys(self.split_dirs.values())}
        return {split: scanned[folder] for split, folder in self.split_dirs.items()}

    def input_description(self) -> dict[str, Any]:
        size = self.image_size
        return {
            "raw_input": "image files (RGB), as torchvision.io or PIL reads them",
            "preprocessing": [
                f"resize the shorter side to {self.eval_resize}: torchvision.transforms.v2.Resize({self.eval_resize}, antialias=True)",
                f"central {size}x{size} crop: torchvision.transforms.v2.CenterCrop({size})",
                "float32 in [0, 1], channels first",
                f"normalise per channel: (x - mean) / std, mean {list(self.mean)}, std {list(self.std)}",
            ],
            "mean": list(self.mean), "std": list(self.std), "resize": {"shorter_side": self.eval_resize, "center_crop": size},
            "image_size": size, "channels": self.channels, "class_names": [str(name) for name in self.classes],
        }

    def data_fingerprint(self) -> dict[str, Any]:
        self.setup()
        train = self.splits["train"]
        listing = hashlib.sha256()
        for path, label in train.samples:
            listing.update(f"{os.path.relpath(path, train.root)}\t{label}\n".encode())
        return {
            "root": str(self.root),
            "classes": list(self.classes),
            "train_images": len(train),
            # the files and their order, which the sample indices refer to
            "train_files_sha256": listing.hexdigest(),
            "image_size": self.image_size,
            "eval_resize": self.eval_resize,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def split_folders(root: Path) -> dict[str, Path]:
    """The folder of each split; val/ stands in for a missing test/."""
    if not root.is_dir():
        raise DistillError(f"data.root {root} does not exist; set data.root=DIR to a directory with {LAYOUT}")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DistillError(f"{root} has no {split}/ folder; ImageFolder data needs {LAYOUT}")
    test = root / "test"
    return {"train": root / "train", "val": root / "val", "test": test if test.is_dir() else root / "val"}


def common_classes(split_dirs: dict[str, Path]) -> list[str]:
    """The class folder names, which every split must share."""
    classes = {}
    for folder in dict.fromkeys(split_dirs.values()):
        try:
            classes[folder] = find_classes(str(folder))[0]
        except FileNotFoundError:
            raise DistillError(f"{folder} holds no class folders; put each class's images in {folder.name}/<class>/") from None
    train = split_dirs["train"]
    for folder, names in classes.items():
        if names != classes[train]:
            lacks = sorted(set(classes[train]) - set(names))
            extra = sorted(set(names) - set(classes[train]))
            differences = [f"{folder.name}/ lacks {_few(lacks)}"] if lacks else []
            differences += [f"{folder.name}/ has {_few(extra)}, which train/ lacks"] if extra else []
            raise DistillError(
                f"{folder} and {train} have different class folders ({'; '.join(differences)}); "
                "every split needs the same classes"
            )
    return classes[train]


def check_has_images(folder: Path, classes: list[str]) -> None:
    """Raise unless some class folder holds at least one image (stops at the first one found)."""
    for name in classes:
        for _dir, _subdirs, files in os.walk(folder / name, followlinks=True):
            if any(has_file_allowed_extension(f, IMG_EXTENSIONS) for f in files):
                return
    raise DistillError(
        f"empty data set: {folder} has {len(classes)} class folder(s) but no images in them "
        f"(looked for {', '.join(IMG_EXTENSIONS)}); put the images in {folder.name}/<class>/"
    )


def _few(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
