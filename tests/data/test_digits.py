import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from distill.data import DigitsDataModule
from distill.errors import DistillError


def splits(dm):
    dm.setup()
    return {name: dm.splits[name] for name in ("train", "val", "test")}


def test_split_sizes_cover_all_digits_once():
    parts = splits(DigitsDataModule(image_size=8, channels=1))
    sizes = {k: len(v) for k, v in parts.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["val"] == pytest.approx(0.15 * 1797, abs=2)
    assert sizes["test"] == pytest.approx(0.15 * 1797, abs=2)


def test_split_is_stratified_and_fixed():
    a = splits(DigitsDataModule(image_size=8, channels=1))
    b = splits(DigitsDataModule(image_size=8, channels=1))
    for name in a:
        assert torch.equal(a[name].inputs, b[name].inputs)
    counts = np.bincount(a["test"].labels.numpy(), minlength=10)
    assert counts.min() >= 25 and counts.max() <= 29  # ~27 of each digit


def test_split_seed_changes_the_split():
    a = splits(DigitsDataModule(image_size=8, channels=1, split_seed=0))
    b = splits(DigitsDataModule(image_size=8, channels=1, split_seed=1))
    assert not torch.equal(a["test"].inputs, b["test"].inputs)


def test_shapes_channels_and_normalisation():
    dm = DigitsDataModule(batch_size=16, image_size=32, channels=3)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (16,) and y.dtype == torch.int64
    assert torch.equal(x[:, 0], x[:, 2])  # grey images repeated into RGB
    train = dm.splits["train"].inputs
    assert abs(train.mean().item()) < 0.1 and 0.8 < train.std().item() < 1.2


def test_native_resolution_keeps_the_pixels():
    from sklearn.datasets import load_digits

    dm = DigitsDataModule(image_size=8, channels=1)
    dm.setup()
    x = torch.cat([dm.splits[s].inputs for s in ("train", "val", "test")])
    images = torch.from_numpy(load_digits().images).float() / 16
    # standardisation is affine, so correlation with the raw pixels is exact
    raw = np.sort(images.flatten().numpy())
    ours = np.sort(x.flatten().numpy())
    assert np.corrcoef(raw, ours)[0, 1] > 0.9999


def test_without_labels_and_with_index():
    dm = DigitsDataModule(batch_size=8, image_size=8, channels=1, labels=False)
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, torch.Tensor) and batch.shape == (8, 1, 8, 8)

    dm = DigitsDataModule(batch_size=8, image_size=8, channels=1, with_index=True)
    x, y, index = next(iter(dm.val_dataloader()))
    assert torch.equal(index, torch.arange(8))
    assert torch.equal(x, dm.splits["val"].inputs[:8])

    dm = DigitsDataModule(batch_size=8, image_size=8, channels=1, labels=False, with_index=True)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"x", "index"}
    # only training goes without labels: validation and test keep theirs to measure the student
    x, y, index = next(iter(dm.test_dataloader()))
    assert torch.equal(y, dm.splits["test"].labels[:8])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"num_workers": -1}, "num_workers"),
        ({"image_size": 4}, "image_size"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "sum to less than 1"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(DistillError, match=message):
        DigitsDataModule(**kwargs)


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_importing_the_data_package_leaves_scikit_learn_out():
    # scikit-learn costs ~80 MB of memory; only the digits data module needs it, when it loads
    code = "import sys, distill.data; print('sklearn' in sys.modules)"
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=repo, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
