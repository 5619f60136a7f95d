"""The data-module contract: every built-in data module follows it, the text module included."""

from __future__ import annotations

import lightning as L
import pytest

from distill.data import DigitsDataModule, TextClassificationDataModule
from distill.data.base import CacheableData, DistillDataModule
from distill.errors import DistillError


def test_built_in_modules_follow_the_contract(tiny_tokenizer, sentiment_files):
    text = TextClassificationDataModule(train_file=str(sentiment_files["train"]), tokenizer=str(tiny_tokenizer))
    for data in (DigitsDataModule(batch_size=8, image_size=8, channels=1), text):
        assert isinstance(data, DistillDataModule) and isinstance(data, CacheableData)
        assert data.random_augmentation is False and data.num_classes >= 2
        data.with_index = True  # the run switches it on for terms that read indices
        assert "index" in (batch := next(iter(data.train_dataloader()))) or len(batch) == 3
        assert data.fingerprint()["data"] == data.name


def test_a_plain_lightning_data_module_is_not_cacheable():
    class Plain(L.LightningDataModule):
        num_classes = 3

    assert not isinstance(Plain(), CacheableData)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "data.batch_size must be at least 1, got 0"),
        ({"num_workers": -1}, "data.num_workers must be 0 or more, got -1"),
        ({"max_length": 1}, "data.max_length must be 2 or more, got 1"),
        ({"labels": "no"}, "data.labels must be true or false, got 'no'"),
    ],
)
def test_text_options_are_checked_by_the_base(tiny_tokenizer, sentiment_files, options, message):
    with pytest.raises(DistillError, match=message):
        TextClassificationDataModule(train_file=str(sentiment_files["train"]), tokenizer=str(tiny_tokenizer), **options)


def test_check_cacheable_names_what_is_missing_in_one_line():
    from types import SimpleNamespace

    from distill.data.base import check_cacheable

    with pytest.raises(DistillError, match="applies random augmentation; set data.augment=false or teacher.cache=false"):
        check_cacheable(SimpleNamespace(random_augmentation=True))
    with pytest.raises(DistillError, match=r"needs the data module to have cache_dataloader\(\) \(SimpleNamespace has not\)"):
        check_cacheable(SimpleNamespace(random_augmentation=False))
    with pytest.raises(DistillError, match=r"to have fingerprint\(\)"):
        check_cacheable(SimpleNamespace(random_augmentation=False, cache_dataloader=lambda: None))
    data = DigitsDataModule(batch_size=8, image_size=8, channels=1)
    assert check_cacheable(data) is data
