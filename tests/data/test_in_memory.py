"""data.in_memory=true: batches drawn by indexing tensors, the same as the DataLoader's for the same seed."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from distill.data import CIFAR10DataModule, DigitsDataModule
from distill.data.batch_crop_flip import BatchRandomCropFlip
from distill.data.in_memory import InMemoryLoader
from distill.errors import DistillError


def _batches(loader, seed):
    torch.manual_seed(seed)
    epochs = [list(loader), list(loader)]  # two passes: a new order each
    return epochs, torch.get_rng_state()


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    else:
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)


@pytest.mark.parametrize("labels", [True, False])
@pytest.mark.parametrize("with_index", [False, True])
def test_digits_batches_equal_the_dataloaders_for_the_same_seed(labels, with_index):
    options = dict(batch_size=50, image_size=8, channels=1, labels=labels, with_index=with_index)
    loader_path, memory_path = DigitsDataModule(**options), DigitsDataModule(**options, in_memory=True)
    for split in ("train", "val", "test"):
        reference = getattr(loader_path, f"{split}_dataloader")()
        loader = getattr(memory_path, f"{split}_dataloader")()
        assert isinstance(loader, InMemoryLoader) and len(loader) == len(reference)
        (expected, expected_state), (got, got_state) = _batches(reference, 3), _batches(loader, 3)
        _assert_same(got, expected)
        assert torch.equal(got_state, expected_state)  # the global generator moved on in the same way
    first, second = _batches(memory_path.train_dataloader(), 3)[0]
    assert not torch.equal(_inputs(first[0]), _inputs(second[0]))  # each pass draws a new order


def _inputs(batch):
    return batch["x"] if isinstance(batch, dict) else batch if isinstance(batch, torch.Tensor) else batch[0]


def test_the_cache_loader_stays_a_dataloader():
    from torch.utils.data import DataLoader

    assert isinstance(DigitsDataModule(image_size=8, channels=1, in_memory=True).cache_dataloader(), DataLoader)


def test_training_under_lightning_learns_the_same_student(make_cnn, fast_trainer):
    from distill import DistillationModule
    from distill.losses import KD, CrossEntropy

    torch.manual_seed(0)
    student, teacher = make_cnn(), make_cnn()
    finals = []
    for in_memory in (False, True):
        torch.manual_seed(1)
        module = DistillationModule(copy.deepcopy(student), teacher, {"kd": KD(), "ce": CrossEntropy()})
        data = DigitsDataModule(batch_size=64, image_size=8, channels=1, in_memory=in_memory)
        fast_trainer(max_epochs=2).fit(module, datamodule=data)
        finals.append(module.student.state_dict())
    for key, value in finals[0].items():
        assert torch.equal(value, finals[1][key]), key


def test_auto_is_in_memory_only_where_the_batches_are_the_dataloaders():
    from torch.utils.data import DataLoader

    def kinds(**options):
        data = DigitsDataModule(image_size=8, channels=1, in_memory="auto", **options)
        return [type(getattr(data, f"{split}_dataloader")()) for split in ("train", "val", "test")]

    assert kinds() == [InMemoryLoader] * 3
    assert kinds(num_workers=1) == [DataLoader] * 3  # workers asked for: the DataLoader that has them
    under_ddp = DigitsDataModule(image_size=8, channels=1, in_memory="auto")
    under_ddp.trainer = SimpleNamespace(world_size=2)
    assert isinstance(under_ddp.train_dataloader(), DataLoader)  # not sharded in memory: no refusal either
    augmented = DigitsDataModule(image_size=8, channels=1, in_memory="auto")
    augmented.augment = True  # random transforms per sample: the DataLoader's draws
    assert isinstance(augmented.train_dataloader(), DataLoader) and isinstance(augmented.val_dataloader(), InMemoryLoader)
    assert isinstance(DigitsDataModule(image_size=8, channels=1, in_memory="auto").cache_dataloader(), DataLoader)


def test_the_default_config_draws_digits_in_memory():
    from hydra import compose, initialize_config_dir

    from distill.cli.config_directory import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        assert compose("config").data.in_memory == "auto"


def test_batch_crop_flip_is_a_crop_of_the_padded_image_and_a_flip():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 12, 12), dtype=torch.uint8)
    out = BatchRandomCropFlip(padding=2)(images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (2, 2, 2, 2))
    shifted = flipped = 0
    for sample, image in zip(out, padded):
        found = [
            (dy, dx, flip)
            for dy in range(5) for dx in range(5) for flip in (False, True)
            if torch.equal(sample, (image.flip(-1) if flip else image)[:, dy:dy + 12, dx:dx + 12])
        ]
        assert found, "not a crop of the padded image"
        shifted += all(f[:2] != (2, 2) for f in found)
        flipped += all(f[2] for f in found)
    assert 5 < flipped < 35 and shifted > 20


def test_cifar_in_memory_augments_the_batch_and_is_seeded(tmp_path, fake_cifar):
    written = fake_cifar(tmp_path, "cifar10")
    dm = CIFAR10DataModule(tmp_path, batch_size=40, val_size=0, with_index=True, in_memory=True)
    reference = CIFAR10DataModule(tmp_path, batch_size=40, val_size=0, with_index=True)
    # evaluation splits: the DataLoader's batches
    _assert_same(_batches(dm.test_dataloader(), 0), _batches(reference.test_dataloader(), 0))
    x, y, index = next(iter(dm.train_dataloader()))
    assert torch.equal(y, written["train"][1][index])
    mean, std = torch.tensor(dm.mean)[:, None, None], torch.tensor(dm.std)[:, None, None]
    raw = (x * std + mean) * 255  # back to bytes
    padded = F.pad(written["train"][0][index], (4, 4, 4, 4)).float()
    for sample, image in zip(raw, padded):
        assert any(
            torch.allclose(sample, (image.flip(-1) if flip else image)[:, dy:dy + 32, dx:dx + 32], atol=1e-3)
            for dy in range(9) for dx in range(9) for flip in (False, True)
        )
    _assert_same(_batches(dm.train_dataloader(), 5), _batches(dm.train_dataloader(), 5))  # same seed, same batches


def test_refusals_say_what_to_change(tmp_path, fake_image_folder):
    from distill.data import ImageFolderDataModule

    fake_image_folder(tmp_path)
    folder = ImageFolderDataModule(tmp_path, batch_size=4, image_size=32)
    folder.in_memory = True
    with pytest.raises(DistillError, match=r"needs the splits held as tensors.*set data.in_memory=false"):
        folder.train_dataloader()
    digits = DigitsDataModule(image_size=8, channels=1, in_memory=True)
    digits.trainer = SimpleNamespace(world_size=2)
    with pytest.raises(DistillError, match="does not shard the data over 2 processes"):
        digits.train_dataloader()
    with pytest.raises(DistillError, match="data.in_memory must be true, false or auto, got 'yes'"):
        DigitsDataModule(in_memory="yes")
    with pytest.raises(ValueError, match="3 inputs but 2 labels"):
        InMemoryLoader(torch.zeros(3, 2), torch.zeros(2), batch_size=1, shuffle=False)
