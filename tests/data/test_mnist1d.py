"""MNIST-1D: generated offline, split seeded and disjoint, cached, with a generator pool."""

import os
from pathlib import Path

import pytest
import torch

from distill.data.mnist1d import MNIST1DDataModule, MNIST1DGenerated, generate
from distill.errors import DistillError


@pytest.fixture(scope="module")
def cache():
    # the tests' shared cache (conftest): the signals are generated once, not in every test run
    return Path(os.environ["DISTILL_CACHE_DIR"])


def test_split_sizes_shapes_and_classes(cache):
    dm = MNIST1DDataModule(cache_dir=str(cache))
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 3500, "val": 500, "test": 1000}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (100, 1, 40) and x.dtype == torch.float32
    assert set(dm.splits["test"].labels.tolist()) == set(range(10))


def test_the_split_is_seeded_and_train_and_val_are_disjoint(cache):
    a, b, c = (MNIST1DDataModule(cache_dir=str(cache), split_seed=s) for s in (0, 0, 1))
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.splits["val"].inputs, b.splits["val"].inputs)
    assert not torch.equal(a.splits["val"].inputs, c.splits["val"].inputs)
    train = {tuple(r.tolist()) for r in a.splits["train"].inputs[:, 0]}
    assert not any(tuple(r.tolist()) in train for r in a.splits["val"].inputs[:, 0])
    # train + val is the package's own training split
    package = generate(5000, 42, 0.8, cache)
    assert len(train) + len(a.splits["val"]) == len(package["x"])


@pytest.mark.slow  # generates the data set again with the package itself (5-20 s)
def test_generation_is_cached_and_equals_the_package_output(cache):
    from mnist1d.data import get_dataset_args, make_dataset

    first = generate(5000, 42, 0.8, cache)
    assert len(list((cache / "mnist1d").glob("*.pt"))) >= 1
    reference = make_dataset(get_dataset_args())
    assert torch.allclose(first["x_test"][:, 0], torch.from_numpy(reference["x_test"]).float())
    assert torch.equal(first["y"], torch.from_numpy(reference["y"]).long())


def test_the_generator_pool_gives_new_signals(cache):
    dm = MNIST1DDataModule(cache_dir=str(cache), unlabeled=MNIST1DGenerated(num_samples=200, seed=7))
    loader = dm.train_dataloader()
    pool = loader.dataset.pool
    assert len(pool) == 200
    train = {tuple(r.tolist()) for r in dm.splits["train"].inputs[:, 0]}
    assert not any(tuple(pool[i][0].tolist()) in train for i in range(200))
    with pytest.raises(DistillError, match="seed"):
        MNIST1DDataModule(cache_dir=str(cache), unlabeled=MNIST1DGenerated(num_samples=200, seed=42)).train_dataloader()
    assert isinstance(MNIST1DDataModule(cache_dir=str(cache), unlabeled="generator").unlabeled, MNIST1DGenerated)


def test_bad_sizes_are_one_line():
    with pytest.raises(DistillError, match="val_size"):
        MNIST1DDataModule(val_size=4000)
