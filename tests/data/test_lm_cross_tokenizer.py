"""Cross-tokenizer LM data: both tokenizations of each block, and pairs that read the same text on both sides."""

from __future__ import annotations

import json

import pytest

from distill.data.lm_text import LanguageModelDataModule
from distill.errors import DistillError

DOCUMENTS = [
    "The assert statement is a convenient way to insert debugging assertions into a program. " * 2,
    "A for loop iterates over the items of a sequence, in the order that they appear. Ünïcödé 🤗",
    "The while statement repeats a block as long as an expression is true.",
    "Functions are defined with def; a function body is a block of statements. naïve café",
] * 2


@pytest.fixture
def text_dir(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, text in enumerate(DOCUMENTS):
        (folder / f"{i}.txt").write_text(text)
    return folder


def _data(text_dir, tmp_path, **options):
    return LanguageModelDataModule(str(text_dir), vocab_size=300, teacher_vocab_size=360, block_size=16, batch_size=2,
                                   val_fraction=0.25, test_fraction=0.25, cache_dir=str(tmp_path / "cache"), **options)


def test_batches_hold_both_tokenizations_and_the_alignment(text_dir, tmp_path):
    data = _data(text_dir, tmp_path, teacher_block_size=12)
    batch = next(iter(data.train_dataloader()))
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 16)
    assert batch["teacher_input_ids"].shape == batch["teacher_attention_mask"].shape == (2, 12)
    assert batch["alignment"].shape == (2, 16, 3)
    assert len(data.tokenizer) == 300 and len(data.teacher_tokenizer) == 360 and data.num_classes == 300
    student, teacher = data.tokenizer, data.teacher_tokenizer
    pairs = 0
    for example in data.datasets["train"].cross_examples:
        for s, t, exact in example.pairs:
            pairs += 1
            # both models have read the same text when they predict
            assert student.decode(example.ids[: s + 1]) == teacher.decode(example.teacher_ids[: t + 1])
            assert t + 1 < 12 and s + 1 < len(example.ids)
            if exact:
                assert student.decode(example.ids[s + 1]) == teacher.decode(example.teacher_ids[t + 1])
    assert pairs > 20


def test_a_block_that_ends_its_document_gives_the_teacher_its_eos_and_no_pair_for_it(text_dir, tmp_path):
    data = _data(text_dir, tmp_path, teacher_block_size=64)
    for example in data.datasets["train"].cross_examples:
        if example.ids[-1] == data.tokenizer.eos_token_id:
            assert example.teacher_ids[-1] == data.teacher_tokenizer.eos_token_id
            assert all(s + 1 < len(example.ids) - 1 for s, _, _ in example.pairs)


def test_teacher_data_is_the_same_documents_in_the_teachers_tokens(text_dir, tmp_path):
    data = _data(text_dir, tmp_path)
    alone = data.teacher_data()
    assert alone.num_classes == 360 and not alone.cross_tokenizer and alone.records == data.records
    batch = next(iter(alone.train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels"} and int(batch["input_ids"].max()) < 360


def test_only_plain_text_and_one_teacher_tokenizer(tmp_path, text_dir):
    records = tmp_path / "pairs.jsonl"
    records.write_text("\n".join(json.dumps({"prompt": f"q{i}", "completion": f" a{i}"}) for i in range(10)))
    with pytest.raises(DistillError, match="plain-text data only"):
        LanguageModelDataModule(str(records), vocab_size=300, teacher_vocab_size=400, cache_dir=str(tmp_path / "c")).datasets
    with pytest.raises(DistillError, match="not both"):
        LanguageModelDataModule(teacher_tokenizer=str(text_dir), teacher_vocab_size=400)
