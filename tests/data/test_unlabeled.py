"""Unlabelled pools next to the labelled training set: hidden labels, mixing ratio, other data's inputs."""

import pytest
import torch

from distill.data import DigitsDataModule
from distill.data.unlabeled import DataSetInputs, HiddenLabels, MixedBatchSampler
from distill.errors import DistillError


def digits(**options):
    return DigitsDataModule(batch_size=50, image_size=8, channels=1, **options)


def test_hidden_labels_keep_the_given_fraction_seeded():
    mask = HiddenLabels(0.1, seed=3).hidden(1000)
    assert (~mask).sum().item() == 100
    assert torch.equal(mask, HiddenLabels(0.1, seed=3).hidden(1000))
    assert not torch.equal(mask, HiddenLabels(0.1, seed=4).hidden(1000))


def test_hidden_labels_become_minus_100_in_training_batches_only():
    dm = digits(unlabeled=HiddenLabels(0.2, seed=0))
    labels = torch.cat([y for _, y in dm.train_dataloader()])
    n = len(dm.splits["train"])
    assert len(labels) == n and (labels != -100).sum().item() == round(0.2 * n)
    assert (labels[labels != -100] >= 0).all()
    val_labels = torch.cat([y for _, y in dm.val_dataloader()])
    assert (val_labels >= 0).all()  # validation and test keep all their labels


def test_the_mixing_ratio_holds_in_every_batch_and_an_epoch_passes_once_over_the_labelled_part():
    dm = digits(unlabeled=HiddenLabels(0.3, seed=0), unlabeled_fraction=0.4)
    batches = [y for _, y in dm.train_dataloader()]
    labelled = round(0.3 * len(dm.splits["train"]))
    for y in batches[:-1]:
        assert (y == -100).sum().item() == 20 and len(y) == 50  # 40 % of 50
    assert sum((y != -100).sum().item() for y in batches) == labelled
    assert len(batches) == -(-labelled // 30)


def test_mixed_batch_sampler_draws_every_unlabelled_index_before_repeating_one():
    sampler = MixedBatchSampler(torch.arange(10), torch.arange(10, 16), batch_size=4, fraction=0.5)
    drawn = [i for batch in sampler for i in batch if i >= 10]
    assert len(sampler) == 5 and len(drawn) == 10
    assert sorted(drawn[:6]) == list(range(10, 16))


def test_another_data_sets_inputs_as_a_pool_are_unlabelled_and_appended():
    pool = DataSetInputs(digits(split_seed=1))
    dm = digits(unlabeled=pool)
    dataset = dm.train_dataloader().dataset
    n = len(dm.splits["train"])
    assert len(dataset) == 2 * n
    x, y = dataset[n]
    assert y.item() == -100 and x.shape == (1, 8, 8)


def test_without_labels_the_pool_yields_inputs_only():
    dm = digits(labels=False, unlabeled=HiddenLabels(0.5))
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, torch.Tensor) and batch.shape[1:] == (1, 8, 8)


def test_bad_pool_settings_are_one_line():
    with pytest.raises(DistillError, match="labeled_fraction"):
        HiddenLabels(1.5)
    with pytest.raises(DistillError, match="unlabeled_fraction"):
        digits(unlabeled=HiddenLabels(0.5), unlabeled_fraction=1.0)
    with pytest.raises(DistillError, match="data.unlabeled is not"):
        digits(unlabeled_fraction=0.5)
    with pytest.raises(DistillError, match="generator"):
        digits(unlabeled="generator")  # digits has no generator
    with pytest.raises(DistillError, match="sample indices"):
        digits(unlabeled=HiddenLabels(0.5), with_index=True).train_dataloader()


def test_a_pool_of_another_input_shape_is_one_line_not_a_collate_error():
    dm = digits(unlabeled=DataSetInputs(DigitsDataModule(batch_size=50, image_size=16, channels=1)))
    with pytest.raises(DistillError, match=r"pool's inputs have shape \(1, 16, 16\) but the training inputs \(1, 8, 8\)"):
        dm.train_dataloader()
