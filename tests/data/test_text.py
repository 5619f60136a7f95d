"""TextClassificationDataModule on tiny CSV/JSONL files and a tiny BERT tokenizer."""

from __future__ import annotations

import json

import pytest
import torch

from distill.batch import split_batch
from distill.data import TextClassificationDataModule
from distill.errors import DistillError


def vocab_ids(tokenizer_dir):
    """token -> id read straight from vocab.txt (id = line number - 1), independently of transformers."""
    return {token: i for i, token in enumerate((tokenizer_dir / "vocab.txt").read_text().split("\n")) if token}


def write_csv(path, rows, header="text,label"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def module(tokenizer, train, **options):
    return TextClassificationDataModule(train_file=str(train), tokenizer=str(tokenizer), **options)


def test_tokenizer_from_a_directory_keeps_the_vocabulary(tiny_tokenizer, tmp_path):
    # transformers 5's BertTokenizer(vocab_file=...) builds an empty vocabulary; from_pretrained(dir) must not
    train = write_csv(tmp_path / "train.csv", ["the film was good,pos", "the plot was bad,neg"])
    data = module(tiny_tokenizer, train, val_fraction=0.0, test_fraction=0.0, val_file=str(train), test_file=str(train))
    ids = vocab_ids(tiny_tokenizer)
    assert data.tokenizer.cls_token_id == ids["[CLS]"] == 2
    assert data.tokenizer("The film was GOOD")["input_ids"] == [ids[t] for t in ("[CLS]", "the", "film", "was", "good", "[SEP]")]


def test_batches_are_padded_dicts_with_sorted_string_labels(tiny_tokenizer, tmp_path):
    rows = ["good,pos", "the film was very bad,neg", "the plot was not great,pos"]
    train = write_csv(tmp_path / "train.csv", rows)
    data = module(tiny_tokenizer, train, val_file=str(train), test_file=str(train), batch_size=3, with_index=True)
    assert data.class_names == ["neg", "pos"] and data.num_classes == 2
    batch = next(iter(data.val_dataloader()))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "index"}
    ids = vocab_ids(tiny_tokenizer)
    first = [ids[t] for t in ("[CLS]", "good", "[SEP]")]
    # the longest text has 5 words + [CLS] + [SEP] = 7 tokens; the first is padded with [PAD] = 0
    assert batch["input_ids"].shape == (3, 7)
    assert batch["input_ids"][0].tolist() == first + [ids["[PAD]"]] * 4
    assert batch["attention_mask"].tolist() == [[1] * 3 + [0] * 4, [1] * 7, [1] * 7]
    assert batch["labels"].tolist() == [1, 0, 1]
    assert batch["index"].tolist() == [0, 1, 2]
    parts = split_batch(batch)  # the models get the token tensors as keyword arguments
    assert set(parts.kwargs) == {"input_ids", "token_type_ids", "attention_mask"} and parts.labels is batch["labels"]


def test_integer_labels_from_jsonl_and_truncation(tiny_tokenizer, tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"sentence": "the film was good " * 5, "y": y}) + "\n" for y in (0, 3, 1)))
    data = module(tiny_tokenizer, train, val_file=str(train), test_file=str(train), text_column="sentence", label_column="y", max_length=6)
    assert data.num_classes == 4 and data.class_names == ["0", "1", "2", "3"]
    batch = next(iter(data.test_dataloader()))
    assert batch["labels"].tolist() == [0, 3, 1]
    assert batch["input_ids"].shape == (3, 6)
    assert (batch["input_ids"][:, -1] == vocab_ids(tiny_tokenizer)["[SEP]"]).all()


def test_explicit_classes_and_labels_outside_them(tiny_tokenizer, tmp_path):
    train = write_csv(tmp_path / "train.csv", ["good,pos", "bad,neg"])
    val = write_csv(tmp_path / "val.csv", ["good,positive"])
    data = module(tiny_tokenizer, train, val_file=str(val), test_file=str(train), classes=["pos", "neg"])
    assert data.class_names == ["pos", "neg"]
    with pytest.raises(DistillError, match=r"label 'positive' in the val data .* is not one of the 2 classes \['pos', 'neg'\]"):
        data.setup()
    with pytest.raises(DistillError, match="label 'neutral' in the train data"):
        module(tiny_tokenizer, write_csv(tmp_path / "t2.csv", ["good,neutral"]), classes=["pos", "neg"], val_file=str(train), test_file=str(train)).setup()


def test_splits_held_out_of_the_training_file(tiny_tokenizer, sentiment_files):
    data = module(tiny_tokenizer, sentiment_files["train"], val_fraction=0.25, test_fraction=0.25, with_index=True)
    data.setup()
    sizes = {split: len(data.splits[split]) for split in ("train", "val", "test")}
    assert sizes == {"train": 8, "val": 4, "test": 4}
    texts = {split: [tuple(e) for e in data.splits[split].encodings["input_ids"]] for split in sizes}
    again = module(tiny_tokenizer, sentiment_files["train"], val_fraction=0.25, test_fraction=0.25)
    again.setup()
    assert [tuple(e) for e in again.splits["val"].encodings["input_ids"]] == texts["val"]  # seeded
    assert len({id(row) for split in sizes for row in data._rows[split]}) == 16  # every row in exactly one split


def test_cache_dataloader_covers_the_training_split_in_order(tiny_tokenizer, sentiment_files):
    data = module(tiny_tokenizer, sentiment_files["train"], val_file=str(sentiment_files["val"]),
                  test_file=str(sentiment_files["test"]), batch_size=5)
    assert data.random_augmentation is False
    indices = torch.cat([batch["index"] for batch in data.cache_dataloader()])
    assert indices.tolist() == list(range(16))
    assert "index" not in next(iter(data.train_dataloader()))  # with_index=False elsewhere


def test_without_labels(tiny_tokenizer, sentiment_files):
    data = module(tiny_tokenizer, sentiment_files["train"], labels=False, classes=["neg", "pos"], with_index=True)
    batch = next(iter(data.train_dataloader()))
    assert "labels" not in batch and "index" in batch
    with pytest.raises(DistillError, match="labels=false needs data.classes"):
        module(tiny_tokenizer, sentiment_files["train"], labels=False)


def test_fingerprint_follows_the_files(tiny_tokenizer, sentiment_files):
    data = module(tiny_tokenizer, sentiment_files["train"], val_file=str(sentiment_files["val"]))
    first = data.fingerprint()
    json.dumps(first)
    assert set(first["files"]) == {"train", "val"}
    assert first["tokenizer"]["files"].keys() == {"tokenizer_config.json", "vocab.txt"}
    assert first["files"]["train"]["size"] == sentiment_files["train"].stat().st_size
    sentiment_files["train"].write_text(sentiment_files["train"].read_text().replace("good", "great"))
    changed = module(tiny_tokenizer, sentiment_files["train"], val_file=str(sentiment_files["val"])).fingerprint()
    assert changed["files"]["train"]["sha256"] != first["files"]["train"]["sha256"]
    assert changed["files"]["val"] == first["files"]["val"]
    assert module(tiny_tokenizer, sentiment_files["train"], val_file=str(sentiment_files["val"]), max_length=8).fingerprint() != changed


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        (None, {}, "text data file not found"),
        ("", {}, "has no rows"),
        ("text,label\n", {}, "has no rows"),
        ("sentence,label\ngood,pos\n", {}, r"row 1 has no column 'text' .*data.text_column"),
        ("text,labl\ngood,pos\n", {}, r"no column 'label' \(did you mean labl\?\)"),
    ],
)
def test_bad_files(tiny_tokenizer, tmp_path, content, options, message):
    path = tmp_path / "train.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DistillError, match=message):
        module(tiny_tokenizer, path, **options)


def test_bad_suffix_and_tokenizer(tiny_tokenizer, tmp_path):
    (tmp_path / "train.txt").write_text("text,label\ngood,pos\n")
    with pytest.raises(DistillError, match=r"must end in \.csv, \.tsv, \.jsonl"):
        module(tiny_tokenizer, tmp_path / "train.txt")
    train = write_csv(tmp_path / "train.csv", ["good,pos"])
    with pytest.raises(DistillError, match="data.tokenizer=.* is not a local directory"):
        module(tmp_path / "nowhere", train)


def test_minilm_tokenizer_maps_cls_to_101(minilm_dir, tmp_path):
    train = write_csv(tmp_path / "train.csv", ["a good film,pos", "a bad film,neg"])
    data = module(minilm_dir, train, val_file=str(train), test_file=str(train))
    ids = data.tokenizer("a good film")["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and data.tokenizer.pad_token_id == 0
    vocab = vocab_ids(minilm_dir)
    assert ids[1:-1] == [vocab["a"], vocab["good"], vocab["film"]]
