import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from distill.data import ImageFolderDataModule
from distill.errors import DistillError
from distill.run import config_dir

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


@pytest.fixture
def folder(tmp_path, fake_image_folder):
    return fake_image_folder(tmp_path / "images")


def test_classes_splits_and_batches(folder):
    dm = ImageFolderDataModule(folder, batch_size=12, image_size=32)
    assert dm.num_classes == 3 and dm.classes == ["cat", "dog", "fish"]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (12, 3, 32, 32) and x.dtype == torch.float32
    assert sorted(y.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert dm.splits["test"] is dm.splits["val"]  # no test/: val is the test split
    assert dm.random_augmentation


def test_eval_transform_is_resize_then_center_crop(tmp_path):
    # a 48×40 image (wide): the shorter side goes to 37 (32 × 256/224), then the central 32×32
    pixels = np.random.default_rng(1).integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    for split in ("train", "val"):
        (tmp_path / split / "only").mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / split / "only" / "a.png")
    dm = ImageFolderDataModule(tmp_path, image_size=32, augment=False)
    assert dm.eval_resize == 37 and ImageFolderDataModule(tmp_path).eval_resize == 256
    x, y = next(iter(dm.test_dataloader()))
    resized = Image.fromarray(pixels).resize((44, 37), Image.BILINEAR)  # 48 × 37/40 = 44.4 → 44
    crop = np.array(resized)[2:34, 6:38]  # round((37-32)/2) = 2, round((44-32)/2) = 6
    expected = (torch.from_numpy(crop).permute(2, 0, 1).float() / 255 - MEAN[:, None, None]) / STD[:, None, None]
    # PIL's and torchvision's antialiased bilinear filters agree to a grey level or so
    assert (x[0] - expected).abs().max() < 3 / 255 / 0.224
    assert y.tolist() == [0]
    x_train, _ = next(iter(dm.train_dataloader()))
    assert torch.equal(x_train, x)  # augment=False trains on the evaluation crops


def test_test_folder_is_used_when_present(tmp_path, fake_image_folder):
    fake_image_folder(tmp_path, per_class=2, splits=("train", "val"))
    fake_image_folder(tmp_path, per_class=1, splits=("test",), seed=5)
    dm = ImageFolderDataModule(tmp_path, image_size=16)
    dm.setup()
    assert (len(dm.splits["train"]), len(dm.splits["val"]), len(dm.splits["test"])) == (6, 6, 3)


def test_cache_loader_and_fingerprint(folder, fake_image_folder, tmp_path):
    dm = ImageFolderDataModule(folder, batch_size=5, image_size=16, with_index=True)
    x, y, index = (torch.cat(parts) for parts in zip(*dm.cache_dataloader()))
    assert torch.equal(index, torch.arange(12)) and y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    again = torch.cat([b[0] for b in dm.cache_dataloader()])
    assert torch.equal(x, again)  # deterministic: the evaluation transform
    _, y_train, index_train = (torch.cat(parts) for parts in zip(*dm.train_dataloader()))
    assert torch.equal(y_train, y[index_train])

    base = dm.fingerprint()
    json.dumps(base)
    assert base["data"] == "image_folder" and base["classes"] == ["cat", "dog", "fish"] and base["train_images"] == 12
    assert ImageFolderDataModule(folder, batch_size=2, image_size=16, augment=False, labels=False).fingerprint() == base
    assert ImageFolderDataModule(folder, image_size=24).fingerprint() != base
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "train" / "dog" / "extra.png")
    assert ImageFolderDataModule(folder, image_size=16).fingerprint() != base  # the indices moved


def test_missing_root_or_split(tmp_path, fake_image_folder):
    with pytest.raises(DistillError, match=r"data.root .*nowhere does not exist; set data.root=DIR to a directory with train/<class>"):
        ImageFolderDataModule(tmp_path / "nowhere")
    fake_image_folder(tmp_path, splits=("train",))
    with pytest.raises(DistillError, match=r"has no val/ folder; ImageFolder data needs train/<class>/<image> and val/"):
        ImageFolderDataModule(tmp_path)
    (tmp_path / "val").mkdir()
    with pytest.raises(DistillError, match=r"val holds no class folders; put each class's images in val/<class>/"):
        ImageFolderDataModule(tmp_path)


def test_classes_must_match(tmp_path, fake_image_folder):
    fake_image_folder(tmp_path, classes=("cat", "dog", "fish"), splits=("train",))
    fake_image_folder(tmp_path, classes=("cat", "dog", "bird"), splits=("val",))
    with pytest.raises(DistillError, match=r"different class folders \(val/ lacks fish; val/ has bird, which train/ lacks\); every split needs the same classes"):
        ImageFolderDataModule(tmp_path)


def test_empty_data_set(tmp_path):
    for split in ("train", "val"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(DistillError, match=r"empty data set: .*train has 2 class folder\(s\) but no images in them \(looked for .jpg"):
        ImageFolderDataModule(tmp_path)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"batch_size": 0}, "data.batch_size must be at least 1"),
        ({"image_size": 2}, "data.image_size must be 8 or more"),
        ({"image_size": 32, "eval_resize": 16}, "data.eval_resize must be 32 or more, got 16"),
        ({"labels": "no"}, "data.labels must be true or false"),
    ],
)
def test_bad_settings(folder, options, message):
    with pytest.raises(DistillError, match=message):
        ImageFolderDataModule(folder, **options)


def test_config_composes():
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["data=image_folder", "data.root=/images"])
    assert cfg.data._target_ == "distill.data.ImageFolderDataModule" and cfg.data.root == "/images"
    assert (cfg.data.image_size, cfg.data.eval_resize, cfg.data.augment, cfg.data.labels, cfg.data.with_index) == (224, None, True, True, False)


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_real_run_on_a_tiny_image_folder(tmp_path, fake_image_folder, tiny_cli):
    fake_image_folder(tmp_path / "images")
    result = tiny_cli(
        tmp_path, "data=image_folder", f"data.root={tmp_path / 'images'}", "data.image_size=32", "data.batch_size=4",
        "data.num_workers=0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 <= summary["student"]["test_accuracy"] <= 1
    assert json.loads((tmp_path / "run" / "report.json").read_text())["meta"]["data"] == "ImageFolderDataModule"
