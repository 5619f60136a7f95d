"""MNIST-1D (Greydanus, 2020): a small, hard, offline benchmark of 40-sample 1-D signals in 10 classes.

Generated locally by the ``mnist1d`` package (``make_dataset(get_dataset_args())``, never its
``get_dataset``, which tries the network first) and cached in ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from distill.data.base import ClassificationDataModule, check_int
from distill.data.tensor_dataset import TensorClassificationDataset
from distill.data.unlabeled import attach_pool
from distill.errors import DistillError
from distill.io import atomic_torch_save


def _dataset_args(num_samples: int, seed: int, train_split: float) -> Any:
    try:
        from mnist1d.data import get_dataset_args
    except ImportError:
        raise DistillError("data=mnist1d needs the mnist1d package; pip install mnist1d") from None
    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = num_samples, seed, train_split
    return args


def generate(num_samples: int, seed: int, train_split: float, cache_dir: str | Path | None) -> dict[str, torch.Tensor]:
    """The package's ``make_dataset`` output as float32/int64 tensors, cached by its arguments."""
    args = _dataset_args(num_samples, seed, train_split)
    key = {k: v for k, v in vars(args).items() if k != "url"}
    path = None
    if cache_dir is not None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = Path(cache_dir).expanduser() / "mnist1d" / f"{digest}.pt"
        if path.is_file():
            return torch.load(path, weights_only=True)
    from mnist1d.data import make_dataset

    data = make_dataset(args)
    tensors = {
        "x": torch.from_numpy(np.asarray(data["x"], dtype=np.float32)).unsqueeze(1),
        "y": torch.from_numpy(np.asarray(data["y"], dtype=np.int64)),
        "x_test": torch.from_numpy(np.asarray(data["x_test"], dtype=np.float32)).unsqueeze(1),
        "y_test": torch.from_numpy(np.asarray(data["y_test"], dtype=np.int64)),
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(tensors, path)
    return tensors


class MNIST1DDataModule(ClassificationDataModule):
    """MNIST-1D: 5,000 signals of length 40 (shape ``[1, 40]``), 10 classes, generated offline.

    The package's own split gives 4,000 training and 1,000 test signals; ``val_size`` of the
    training signals (seeded by ``split_seed``) are held out for validation, so the best epoch
    is chosen without the test set. The package standardises the signals; no augmentation here
    (see ``augment=`` for batch augmentation seen by both models).

    Args:
        batch_size, num_workers, labels, with_index: as for every distill data module.
        num_samples: signals generated in all (the package's default: 5,000).
        val_size: training signals held out for validation.
        split_seed: seed of the validation split.
        seed: seed of the generator (the package's default: 42).
        cache_dir: where the generated tensors are kept (``None``: generated on every setup).
        unlabeled: an optional pool of inputs without labels mixed into training batches
            (:mod:`distill.data.unlabeled`, or :class:`MNIST1DGenerated` for fresh signals).
        unlabeled_fraction: the share of each training batch drawn from the pool
            (``None``: the pool's natural share).
    """

    name = "mnist1d"
    num_classes = 10

    def __init__(
        self,
        batch_size: int = 100,
        num_workers: int = 0,
        num_samples: int = 5000,
        val_size: int = 500,
        split_seed: int = 0,
        seed: int = 42,
        cache_dir: str | None = None,
        labels: bool = True,
        with_index: bool = False,
        unlabeled: Any = None,
        unlabeled_fraction: float | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers, labels, with_index)
        self.num_samples = check_int("num_samples", num_samples, 100)
        self.val_size = check_int("val_size", val_size, 1)
        if self.val_size >= int(self.num_samples * 0.8):
            raise DistillError(
                f"data.val_size={val_size} leaves no training signals of the {int(num_samples * 0.8)} "
                "in the training split; lower data.val_size or raise data.num_samples"
            )
        self.split_seed = check_int("split_seed", split_seed, 0)
        self.seed = check_int("seed", seed, 0)
        self.cache_dir = cache_dir
        attach_pool(self, unlabeled, unlabeled_fraction)

    def load_splits(self) -> dict[str, Dataset]:
        data = generate(self.num_samples, self.seed, 0.8, self.cache_dir)
        order = torch.randperm(len(data["y"]), generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = order[: self.val_size].sort().values, order[self.val_size :].sort().values
        return {
            "train": TensorClassificationDataset(data["x"][train_idx], data["y"][train_idx]),
            "val": TensorClassificationDataset(data["x"][val_idx], data["y"][val_idx]),
            "test": TensorClassificationDataset(data["x_test"], data["y_test"]),
        }

    def default_pool(self) -> MNIST1DGenerated:
        """``data.unlabeled=generator``: 20,000 fresh signals from the same generator."""
        return MNIST1DGenerated(cache_dir=self.cache_dir)

    def data_fingerprint(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "source": f"mnist1d.data.make_dataset (mnist1d {version('mnist1d')})",
            "num_samples": self.num_samples,
            "seed": self.seed,
            "val_size": self.val_size,
            "split_seed": self.split_seed,
        }


class MNIST1DGenerated:
    """An unlabeled pool of fresh MNIST-1D signals: the same generator, another seed.

    ``data.unlabeled={_target_: distill.data.mnist1d.MNIST1DGenerated, num_samples: 20000}``.
    Each pool is standardised by its own mean and std, as the package does, which for a few
    thousand signals or more matches the labelled set's to about 1 %.
    """

    def __init__(self, num_samples: int = 20000, seed: int = 1, cache_dir: str | None = None) -> None:
        self.num_samples = check_int("unlabeled.num_samples", num_samples, 10)
        self.seed = check_int("unlabeled.seed", seed, 0)
        self.cache_dir = cache_dir

    def inputs(self, datamodule: Any) -> torch.Tensor:
        if self.seed == getattr(datamodule, "seed", None):
            raise DistillError(
                f"data.unlabeled.seed={self.seed} is the labelled data's generator seed: the pool would "
                "repeat the labelled signals; give another seed"
            )
        cache_dir = self.cache_dir if self.cache_dir is not None else getattr(datamodule, "cache_dir", None)
        return generate(self.num_samples, self.seed, 1.0, cache_dir)["x"]

    def fingerprint(self) -> dict[str, Any]:
        return {"pool": "mnist1d generator", "num_samples": self.num_samples, "seed": self.seed}
