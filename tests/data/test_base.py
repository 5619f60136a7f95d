"""The options and cache hooks every data module shares, on digits (the others are tested in their files)."""

import json

import pytest
import torch

from distill.data import DigitsDataModule
from distill.data.base import check_bool, check_int
from distill.errors import DistillError


def test_shared_options_are_checked():
    assert check_int("batch_size", 8, 1) == 8 and check_int("batch_size", 8.0, 1) == 8
    for value, message in ((0, "data.batch_size must be at least 1, got 0"), (2.5, "must be a whole number"),
                           ("8", "must be a whole number"), (True, "must be a whole number")):
        with pytest.raises(DistillError, match=message):
            check_int("batch_size", value, 1)
    with pytest.raises(DistillError, match="data.num_workers must be 0 or more, got -1"):
        check_int("num_workers", -1, 0)
    with pytest.raises(DistillError, match="data.labels must be true or false, got 'no'"):
        check_bool("labels", "no")
    with pytest.raises(DistillError, match="data.with_index must be true or false"):
        DigitsDataModule(with_index=1)


def test_with_index_may_be_switched_on_after_construction():
    dm = DigitsDataModule(batch_size=8, image_size=8, channels=1)
    assert len(next(iter(dm.val_dataloader()))) == 2
    dm.with_index = True  # what distill.run does for a loss term that reads indices
    assert len(next(iter(dm.val_dataloader()))) == 3


def test_cache_loader_is_the_train_split_in_order_with_indices():
    dm = DigitsDataModule(batch_size=64, image_size=8, channels=1)
    assert dm.random_augmentation is False
    batches = list(dm.cache_dataloader())
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    index = torch.cat([b[2] for b in batches])
    train = dm.splits["train"]
    assert torch.equal(index, torch.arange(len(train)))
    assert torch.equal(x, train.inputs) and torch.equal(y, train.labels)
    # the train loader's indices point at the same samples
    dm.with_index = True
    xs, ys, ids = next(iter(dm.train_dataloader()))
    assert not torch.equal(ids, torch.arange(len(ids)))  # shuffled
    assert torch.equal(xs, train.inputs[ids]) and torch.equal(ys, train.labels[ids])


def test_cache_loader_without_labels():
    batch = next(iter(DigitsDataModule(batch_size=4, image_size=8, channels=1, labels=False).cache_dataloader()))
    assert set(batch) == {"x", "index"} and batch["index"].tolist() == [0, 1, 2, 3]


def test_fingerprint_names_the_inputs_not_the_loader():
    base = DigitsDataModule(image_size=8, channels=1).fingerprint()
    json.dumps(base)
    assert base["data"] == "digits" and base["image_size"] == 8
    same = DigitsDataModule(image_size=8, channels=1, batch_size=7, num_workers=1, labels=False, with_index=True)
    assert same.fingerprint() == base
    for other in ({"image_size": 16}, {"channels": 3}, {"split_seed": 1}, {"val_fraction": 0.2}):
        assert DigitsDataModule(**{"image_size": 8, "channels": 1, **other}).fingerprint() != base, other
