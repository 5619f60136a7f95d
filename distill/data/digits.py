"""scikit-learn's handwritten digits: the embedded, offline default data set."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from distill.data.base import ClassificationDataModule, check_int
from distill.data.tensor_dataset import TensorClassificationDataset
from distill.data.unlabeled import attach_pool
from distill.errors import DistillError


class DigitsDataModule(ClassificationDataModule):
    """1,797 8×8 grey images of the digits 0–9 (UCI, shipped inside scikit-learn).

    Split once, stratified and seeded, into train/val/test; scaled to [0, 1],
    standardised with the training split's mean and std, resized to
    ``image_size`` and repeated to ``channels`` channels so that image models
    built for RGB input take it as is. No augmentation.

    Args:
        batch_size: samples per batch (all splits).
        num_workers: data-loader worker processes (0 loads in the main process).
        image_size: side of the square images the models see.
        channels: number of (identical) channels, 3 for ImageNet-style models.
        val_fraction, test_fraction: shares of the data held out.
        split_seed: seed of the split (kept apart from the training seed so
            that runs with different seeds are scored on the same test set).
        labels: ``False`` drops the labels of the training split, for distillation
            without labels; validation and test keep theirs, to measure the result.
        with_index: also yield each sample's index within its split.
        unlabeled, unlabeled_fraction: an optional pool of unlabelled training inputs and its
            share of each batch (:mod:`distill.data.unlabeled`).
        in_memory: draw batches by indexing the split's tensors (no DataLoader); the
            same batches as the DataLoader for the same seed. ``"auto"`` (the config's
            default): in memory unless there are workers or several processes.
    """

    name = "digits"
    num_classes = 10

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        image_size: int = 32,
        channels: int = 3,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        labels: bool = True,
        with_index: bool = False,
        unlabeled: Any = None,
        unlabeled_fraction: float | None = None,
        in_memory: bool | str = False,
    ) -> None:
        super().__init__(batch_size, num_workers, labels, with_index, in_memory)
        attach_pool(self, unlabeled, unlabeled_fraction)
        self.image_size = check_int("image_size", image_size, 8)
        self.channels = check_int("channels", channels, 1)
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise DistillError(
                f"data.val_fraction and data.test_fraction must be in (0, 1) and sum to less than 1, "
                f"got {val_fraction} and {test_fraction}"
            )
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = check_int("split_seed", split_seed, 0)

    def load_splits(self) -> dict[str, Dataset]:
        # imported here: scikit-learn adds ~80 MB to every process that imports distill.data
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = digits.images.astype(np.float32) / 16.0
        targets = digits.target.astype(np.int64)
        indices = np.arange(len(targets))
        train_idx, rest_idx = train_test_split(
            indices,
            test_size=self.val_fraction + self.test_fraction,
            stratify=targets,
            random_state=self.split_seed,
        )
        val_idx, test_idx = train_test_split(
            rest_idx,
            test_size=self.test_fraction / (self.val_fraction + self.test_fraction),
            stratify=targets[rest_idx],
            random_state=self.split_seed,
        )
        x = torch.from_numpy(images).unsqueeze(1)
        mean, std = x[train_idx].mean(), x[train_idx].std()
        self.pixel_mean, self.pixel_std = float(mean), float(std)  # for input_description()
        x = (x - mean) / std
        # resized once, up front: the data set is small and the models then read plain tensors
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = x.expand(-1, self.channels, -1, -1).contiguous()
        y = torch.from_numpy(targets)
        splits = {}
        for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
            idx = torch.from_numpy(np.sort(idx))
            splits[name] = TensorClassificationDataset(x[idx], y[idx])
        return splits

    def input_description(self) -> dict[str, Any]:
        self.setup()
        size, channels = self.image_size, self.channels
        return {
            "raw_input": "8x8 grayscale digit images, pixel values 0-16 (sklearn.datasets.load_digits().images)",
            "preprocessing": [
                "scale to [0, 1]: pixels / 16",
                f"standardise: (x - {self.pixel_mean!r}) / {self.pixel_std!r} (the training split's mean and std)",
                f"resize to {size}x{size}: torch.nn.functional.interpolate(mode='bilinear', align_corners=False)",
                f"repeat the one channel {channels} times: inputs of shape [B, {channels}, {size}, {size}]",
            ],
            "scale": 1 / 16, "mean": [self.pixel_mean], "std": [self.pixel_std],
            "resize": {"size": [size, size], "mode": "bilinear", "align_corners": False},
            "image_size": size, "channels": channels,
            "class_names": [str(digit) for digit in range(10)],
        }

    def data_fingerprint(self) -> dict[str, Any]:
        import sklearn

        return {
            "source": f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})",
            "image_size": self.image_size,
            "channels": self.channels,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "split_seed": self.split_seed,
            "normalisation": "standardised with the training split's mean and std",
        }
