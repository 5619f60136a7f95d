"""The data-module contract: every built-in data module follows it, the text and language-model modules included;
a module that does not gets one line saying what to add."""

from __future__ import annotations

import lightning as L
import pytest

from distill.data import DigitsDataModule, LanguageModelDataModule, TextClassificationDataModule
from distill.data.base import CacheableData, DistillDataModule
from distill.data.contract import DeclaresAugmentation, IndexableData
from distill.data.lm_examples import examples_sha256
from distill.errors import DistillError

LM_DOCUMENTS = [
    "The assert statement is a convenient way to insert debugging assertions into a program.",
    "A for loop iterates over the items of a sequence, in the order that they appear.",
    "The while statement repeats a block as long as an expression is true.",
    "Functions are defined with def; a function body is a block of statements.",
] * 2


def language_model_data(tmp_path, **options):
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    for i, text in enumerate(LM_DOCUMENTS):
        (folder / f"{i}.txt").write_text(text)
    return LanguageModelDataModule(str(folder), vocab_size=300, block_size=16, batch_size=2, val_fraction=0.25,
                                   test_fraction=0.25, cache_dir=str(tmp_path / "cache"), **options)


def test_built_in_modules_follow_the_contract(tiny_tokenizer, sentiment_files):
    text = TextClassificationDataModule(train_file=str(sentiment_files["train"]), tokenizer=str(tiny_tokenizer))
    for data in (DigitsDataModule(batch_size=8, image_size=8, channels=1), text):
        assert isinstance(data, DistillDataModule) and isinstance(data, CacheableData)
        assert data.random_augmentation is False and data.num_classes >= 2
        data.with_index = True  # the run switches it on for terms that read indices
        assert "index" in (batch := next(iter(data.train_dataloader()))) or len(batch) == 3
        assert data.fingerprint()["data"] == data.name


def test_the_language_model_module_follows_the_contract(tmp_path):
    data = language_model_data(tmp_path)
    assert isinstance(data, DistillDataModule) and isinstance(data, CacheableData) and isinstance(data, IndexableData)
    assert data.random_augmentation is False and data.with_index is False
    assert "index" not in next(iter(data.train_dataloader()))
    data.with_index = True  # the run switches it on for terms that read indices
    assert "index" in next(iter(data.train_dataloader()))
    # the cache's loader: every training example in order, with its index; the train split itself is left as it was
    data.with_index = False
    cached = [batch for batch in data.cache_dataloader()]
    assert [int(i) for b in cached for i in b["index"]] == list(range(len(data.datasets["train"])))
    assert data.datasets["train"].with_index is False
    train = data.datasets["train"]
    assert data.fingerprint() == {
        "data": "lm_text", "examples_sha256": examples_sha256(train.examples, 16, train.pad_id),
        "teacher_tokenizer": None, "teacher_block_size": None,
    }


def test_the_language_model_module_options_are_checked_by_the_base():
    with pytest.raises(DistillError, match="data.batch_size must be at least 1, got 0"):
        LanguageModelDataModule(batch_size=0)
    with pytest.raises(DistillError, match="data.labels must be true or false, got 'no'"):
        LanguageModelDataModule(labels="no")
    with pytest.raises(DistillError, match="data.num_workers must be 0 or more, got -1"):
        LanguageModelDataModule(num_workers=-1)


def test_a_plain_lightning_data_module_is_not_cacheable_nor_indexable():
    class Plain(L.LightningDataModule):
        num_classes = 3

    assert not isinstance(Plain(), CacheableData) and not isinstance(Plain(), IndexableData)
    assert not isinstance(Plain(), DeclaresAugmentation)


def test_a_module_with_with_index_is_indexable():
    class Indexed(L.LightningDataModule):
        num_classes = 3
        with_index = False

    assert isinstance(Indexed(), IndexableData) and not isinstance(Indexed(), CacheableData)


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
    with pytest.raises(DistillError, match=r"to have a random_augmentation flag \(SimpleNamespace has not\)"):
        check_cacheable(SimpleNamespace(cache_dataloader=lambda: None, fingerprint=dict))
    data = DigitsDataModule(batch_size=8, image_size=8, channels=1)
    assert check_cacheable(data) is data
