import json
import os

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from distill.data import CIFAR10DataModule, CIFAR100DataModule
from distill.errors import DistillError
from distill.run import config_dir

CIFAR10_MEAN, CIFAR10_STD = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])


@pytest.fixture
def cifar10(tmp_path, fake_cifar):
    return tmp_path, fake_cifar(tmp_path, "cifar10")


def normalised(images, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    return (images.float() / 255 - mean[:, None, None]) / std[:, None, None]


def everything(loader):
    batches = list(loader)
    return [torch.cat([b[k] for b in batches]) for k in range(len(batches[0]))]


def test_test_split_is_the_test_file_normalised(cifar10):
    root, written = cifar10
    dm = CIFAR10DataModule(root, batch_size=4, val_size=8)
    x, y = everything(dm.test_dataloader())
    assert torch.allclose(x, normalised(written["test"][0]), atol=1e-5)
    assert torch.equal(y, written["test"][1])
    assert dm.num_classes == 10


def test_validation_is_held_out_of_training_with_a_seeded_split(cifar10):
    root, written = cifar10
    images, labels = written["train"]

    def split(**options):
        dm = CIFAR10DataModule(root, val_size=8, **options)
        dm.setup()
        return dm.splits["train"], dm.splits["val"]

    train, val = split()
    assert (len(train), len(val)) == (32, 8)
    # together they are the 40 training images, each once
    together = torch.cat([train.inputs, val.inputs]).flatten(1)
    order = [next(i for i in range(40) if torch.equal(images[i].flatten(), row)) for row in together]
    assert sorted(order) == list(range(40))
    assert torch.equal(torch.cat([train.labels, val.labels]), labels[order])
    assert order[:32] == sorted(order[:32])  # each split keeps the files' order
    assert torch.equal(split()[1].inputs, val.inputs)
    assert not torch.equal(split(split_seed=1)[1].inputs, val.inputs)


def test_val_size_zero_validates_on_the_test_set(cifar10):
    root, _ = cifar10
    dm = CIFAR10DataModule(root, val_size=0)
    dm.setup()
    assert len(dm.splits["train"]) == 40 and dm.splits["val"] is dm.splits["test"]
    with pytest.raises(DistillError, match=r"data.val_size=40 leaves no training images \(CIFAR-10 in .* has 40\)"):
        CIFAR10DataModule(root, val_size=40).setup()


def test_augmentation_is_a_padded_crop_and_a_flip(cifar10):
    root, written = cifar10
    dm = CIFAR10DataModule(root, batch_size=40, val_size=0, with_index=True)
    assert dm.random_augmentation
    torch.manual_seed(0)
    x, y, index = next(iter(dm.train_dataloader()))
    images = written["train"][0][index]
    assert torch.equal(y, written["train"][1][index])
    padded = normalised(F.pad(images, (4, 4, 4, 4)))  # zero padding of the raw bytes, then normalised
    shifted = flipped = 0
    for sample, image in zip(x, padded):
        found = [
            (dy, dx, flip)
            for dy in range(9) for dx in range(9) for flip in (False, True)
            if torch.allclose(sample, (image.flip(-1) if flip else image)[:, dy:dy + 32, dx:dx + 32], atol=1e-5)
        ]
        assert found, "not a 32×32 crop of the padded image"
        shifted += all(f[:2] != (4, 4) for f in found)
        flipped += all(f[2] for f in found)
    assert 0 < flipped < 40 and shifted > 20  # both transforms happen, at random


def test_without_augmentation_train_is_the_plain_image(cifar10):
    root, written = cifar10
    dm = CIFAR10DataModule(root, batch_size=40, val_size=0, augment=False, with_index=True)
    assert not dm.random_augmentation
    x, _, index = next(iter(dm.train_dataloader()))
    assert torch.allclose(x, normalised(written["train"][0][index]), atol=1e-5)


def test_cache_loader_is_the_train_split_unaugmented_with_the_train_loaders_indices(cifar10):
    root, _ = cifar10
    dm = CIFAR10DataModule(root, batch_size=16, val_size=8, with_index=True)
    x, y, index = everything(dm.cache_dataloader())
    assert torch.equal(index, torch.arange(32))
    assert torch.allclose(x, normalised(dm.splits["train"].inputs), atol=1e-5)
    assert torch.equal(y, dm.splits["train"].labels)
    _, y_train, index_train = everything(dm.train_dataloader())
    assert sorted(index_train.tolist()) == list(range(32))
    assert torch.equal(y_train, y[index_train])


def test_image_size_and_batch_forms(cifar10):
    root, _ = cifar10
    x, y = next(iter(CIFAR10DataModule(root, batch_size=4, val_size=8, image_size=16).train_dataloader()))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert isinstance(next(iter(CIFAR10DataModule(root, batch_size=4, labels=False, val_size=8).train_dataloader())), torch.Tensor)
    unlabeled = CIFAR10DataModule(root, batch_size=4, labels=False, with_index=True, val_size=8, augment=False)
    assert set(next(iter(unlabeled.cache_dataloader()))) == {"x", "index"}
    # only training goes without labels: validation keeps them to measure the student
    x, y, index = next(iter(unlabeled.val_dataloader()))
    assert index.tolist() == [0, 1, 2, 3] and y.dtype == torch.int64


def test_cifar100(tmp_path, fake_cifar):
    written = fake_cifar(tmp_path, "cifar100", per_batch=30)
    dm = CIFAR100DataModule(tmp_path, batch_size=10, val_size=5, augment=False)
    assert dm.num_classes == 100
    x, y = everything(dm.test_dataloader())
    mean, std = torch.tensor([0.5071, 0.4865, 0.4409]), torch.tensor([0.2673, 0.2564, 0.2762])
    assert torch.allclose(x, normalised(written["test"][0], mean, std), atol=1e-5)
    assert torch.equal(y, written["test"][1])
    with pytest.raises(DistillError, match="CIFAR-10 not found"):
        CIFAR10DataModule(tmp_path)


def test_fingerprint(cifar10, tmp_path_factory, fake_cifar):
    root, _ = cifar10
    base = CIFAR10DataModule(root, val_size=8).fingerprint()
    json.dumps(base)
    assert base["data"] == "cifar10" and base["root"] == str(root.resolve()) and base["image_size"] == 32
    # the loader's settings and the random augmentation do not change the inputs the teacher sees
    same = CIFAR10DataModule(root, val_size=8, batch_size=3, num_workers=1, labels=False, with_index=True, augment=False)
    assert same.fingerprint() == base
    for other in ({"val_size": 9}, {"split_seed": 1}, {"image_size": 16}):
        assert CIFAR10DataModule(root, **{"val_size": 8, **other}).fingerprint() != base, other
    elsewhere = tmp_path_factory.mktemp("copy")
    fake_cifar(elsewhere, "cifar10")
    assert CIFAR10DataModule(elsewhere, val_size=8).fingerprint() != base
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    stat = batch.stat()
    os.utime(batch, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file was replaced
    assert CIFAR10DataModule(root, val_size=8).fingerprint() != base


@pytest.mark.parametrize(
    "options, message",
    [
        ({"batch_size": 0}, "data.batch_size must be at least 1, got 0"),
        ({"num_workers": -1}, "data.num_workers must be 0 or more"),
        ({"val_size": -1}, "data.val_size must be 0 or more"),
        ({"image_size": 4}, "data.image_size must be 8 or more"),
        ({"augment": "yes"}, "data.augment must be true or false"),
        ({"download": "no"}, "data.download must be true or false"),
    ],
)
def test_bad_settings(cifar10, options, message):
    with pytest.raises(DistillError, match=message):
        CIFAR10DataModule(cifar10[0], **options)


def test_configs_compose():
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        for name, target, folder in (("cifar10", "CIFAR10DataModule", "cifar-10"), ("cifar100", "CIFAR100DataModule", "cifar-100")):
            cfg = compose("config", overrides=[f"data={name}", "data.root=/somewhere"])
            assert cfg.data._target_ == f"distill.data.{target}"
            assert (cfg.data.download, cfg.data.augment, cfg.data.val_size, cfg.data.labels, cfg.data.with_index) == (False, True, 5000, True, False)
            assert cfg.data.batch_size == 64 and cfg.data.image_size == 32
            with pytest.raises(Exception, match=f"{folder}"):  # instantiated, it looks for the files
                instantiate(cfg.data)
            default_root = compose("config", overrides=[f"data={name}"]).data.root
            assert default_root == os.environ.get("DISTILL_DATA_DIR", "~/.cache/distill/data")


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_real_run_on_fake_cifar10(tmp_path, fake_cifar, tiny_cli):
    fake_cifar(tmp_path / "data", "cifar10")
    result = tiny_cli(
        tmp_path, "data=cifar10", f"data.root={tmp_path / 'data'}", "data.val_size=8", "data.batch_size=8",
        "data.num_workers=0", "data.image_size=16",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 <= summary["student"]["test_accuracy"] <= 1
    assert "trained by distill" in summary["teacher"]["source"]
    assert json.loads((tmp_path / "run" / "report.json").read_text())["meta"]["data"] == "CIFAR10DataModule"
