"""Text classification from local CSV/TSV/JSONL files, tokenized by a local Hugging Face tokenizer.

Batches are dicts ``{input_ids, attention_mask[, token_type_ids], labels[, index]}``,
padded to the longest text of the batch; the models get every entry but
``labels`` and ``index`` as keyword arguments (see :mod:`distill.batch`).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from distill.data.base import DistillDataModule, check_int
from distill.errors import DistillError, close_matches, first_line

SUFFIXES = (".csv", ".tsv", ".jsonl")
#: files of a tokenizer directory that determine the tokens (the fingerprint hashes these, not the weights)
TOKENIZER_FILES = ("tokenizer", "vocab", "merges", "special_tokens_map", "added_tokens", "spiece", "sentencepiece")


def read_records(path: str | Path, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of a ``.csv``, ``.tsv`` or ``.jsonl`` file, each checked to have ``columns``."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise DistillError(f"text data file not found: {path}; check the path (it is read relative to the launch directory)")
    if path.suffix.lower() not in SUFFIXES:
        raise DistillError(f"text data file {path} must end in {', '.join(SUFFIXES)}, got '{path.suffix}'")
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".jsonl":
            rows = []
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DistillError(f"{path} line {number} is not JSON ({error.msg}); write one object per line") from None
                if not isinstance(row, dict):
                    raise DistillError(f"{path} line {number} is a JSON {type(row).__name__}, not an object")
                rows.append(row)
        else:
            rows = list(csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    if not rows:
        raise DistillError(f"text data file {path} has no rows; give a file with a header and at least one example")
    for number, row in enumerate(rows, start=1):
        missing = [c for c in columns if row.get(c) is None]
        if missing:
            raise DistillError(
                f"{path} row {number} has no column '{missing[0]}'{close_matches(missing[0], row)} "
                f"(it has {', '.join(map(str, row))}); set data.text_column / data.label_column"
            )
    return rows


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())


def class_list(train_labels: Sequence[Any], classes: Sequence[Any] | int | None) -> list[str]:
    """The class names in index order: ``classes`` as given, ``0..n-1`` for integer labels, else the sorted labels."""
    if isinstance(classes, int) and not isinstance(classes, bool):
        if classes < 1:
            raise DistillError(f"data.classes must be at least 1 (or a list of names), got {classes}")
        return [str(i) for i in range(classes)]
    if classes is not None:
        names = [str(c) for c in classes]
        if len(set(names)) != len(names) or not names:
            raise DistillError(f"data.classes must list distinct class names, got {list(classes)}")
        return names
    if all(_is_integer(v) for v in train_labels):
        return [str(i) for i in range(max(int(v) for v in train_labels) + 1)]
    return sorted({str(v) for v in train_labels})


class TokenizedTexts(Dataset):
    """Tokenized texts (token lists, unpadded) with their class indices; items are dicts with an ``index``."""

    def __init__(self, encodings: dict[str, list[list[int]]], labels: list[int] | None) -> None:
        self.encodings = encodings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.encodings["input_ids"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {key: values[i] for key, values in self.encodings.items()}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        item["index"] = i
        return item


class PadToLongest:
    """Collate token lists into tensors padded to the batch's longest text (``input_ids`` with ``pad_token_id``, the rest with 0)."""

    def __init__(self, pad_token_id: int, labels: bool = True, with_index: bool = False) -> None:
        self.pad_token_id = int(pad_token_id)
        self.labels = labels
        self.with_index = with_index

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Tensor]:
        longest = max(len(item["input_ids"]) for item in items)
        batch: dict[str, Tensor] = {}
        for key in items[0]:
            if key in ("labels", "index"):
                continue
            fill = self.pad_token_id if key == "input_ids" else 0
            batch[key] = torch.tensor([item[key] + [fill] * (longest - len(item[key])) for item in items], dtype=torch.long)
        if self.labels and "labels" in items[0]:
            batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=torch.long)
        if self.with_index:
            batch["index"] = torch.tensor([item["index"] for item in items], dtype=torch.long)
        return batch


class TextClassificationDataModule(DistillDataModule):
    """Text classification from local files: ``data=text data.train_file=train.csv data.tokenizer=DIR``.

    The files are read (and checked) when the module is built; a split without
    its own file is held out of the training file (seeded, ``val_fraction``/
    ``test_fraction``). Labels are integers ``0..n-1`` or names, which are
    numbered in the order of ``classes`` (default: sorted).

    Args:
        train_file, val_file, test_file: ``.csv``, ``.tsv`` or ``.jsonl`` files
            with a text and a label column; ``val_file``/``test_file`` optional.
        tokenizer: a local directory with a Hugging Face tokenizer
            (``AutoTokenizer.from_pretrained(dir, local_files_only=True)``).
        text_column, label_column: column (or JSON key) names.
        classes: the class names in index order, or their number for integer
            labels; default: inferred from the training file.
        max_length: longer texts are truncated to this many tokens.
        batch_size, num_workers: as for any data loader.
        val_fraction, test_fraction, split_seed: the held-out shares, when a file is missing.
        labels: ``False`` yields inputs only, for distillation without labels.
        with_index: also yield each sample's index within its split.
    """

    name = "text"

    def __init__(
        self,
        train_file: str,
        tokenizer: str | None,
        val_file: str | None = None,
        test_file: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        classes: Sequence[str] | int | None = None,
        max_length: int = 128,
        batch_size: int = 32,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        labels: bool = True,
        with_index: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, labels, with_index)
        self.max_length = check_int("max_length", max_length, 2)
        self.text_column, self.label_column = str(text_column), str(label_column)
        self.split_seed = check_int("split_seed", split_seed, 0)
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        held_out = {"val": val_fraction if not val_file else 0.0, "test": test_fraction if not test_file else 0.0}
        if any(not 0 <= f < 1 for f in held_out.values()) or sum(held_out.values()) >= 1:
            raise DistillError(
                f"data.val_fraction and data.test_fraction must be in [0, 1) and sum to less than 1, "
                f"got {val_fraction} and {test_fraction}"
            )
        self.fractions = held_out
        if tokenizer is None:
            raise DistillError("data.tokenizer is not set: give data.tokenizer=DIR (a Hugging Face tokenizer directory; "
                               "with teacher=hf_sequence_classification it defaults to teacher.path)")
        self.tokenizer_dir = Path(str(tokenizer)).expanduser()
        self.tokenizer = load_tokenizer(self.tokenizer_dir)

        columns = [self.text_column, self.label_column] if labels else [self.text_column]
        rows = {split: read_records(path, columns) for split, path in self.files.items() if path}
        train_labels = [row[self.label_column] for row in rows["train"]] if labels else []
        self.class_names = class_list(train_labels, classes) if labels or classes is not None else []
        if not self.class_names:
            raise DistillError("data.labels=false needs data.classes (the class names, or their number)")
        self._rows = self._split(rows)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _split(self, rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        """The rows of each split: its own file, else a seeded share of the training file."""
        train = rows["train"]
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        result, start = {}, 0
        for split in ("val", "test"):
            if split in rows:
                result[split] = rows[split]
                continue
            count = max(1, round(self.fractions[split] * len(train)))
            result[split] = [train[i] for i in sorted(order[start:start + count])]
            start += count
        result["train"] = [train[i] for i in sorted(order[start:])]
        if not result["train"]:
            raise DistillError(f"no training rows are left in {self.files['train']} after holding out val/test; give more rows or val_file/test_file")
        return result

    def _class_index(self, value: Any, split: str) -> int:
        name = str(int(value)) if _is_integer(value) else str(value)
        try:
            return self.class_names.index(name)
        except ValueError:
            raise DistillError(
                f"label '{value}' in the {split} data ({self.files[split] or self.files['train']}) is not one of the "
                f"{self.num_classes} classes {self.class_names}{close_matches(name, self.class_names)}; "
                "fix the label or list every class in data.classes"
            ) from None

    def load_splits(self) -> dict[str, TokenizedTexts]:
        splits = {}
        for split, rows in self._rows.items():
            texts = [str(row[self.text_column]) for row in rows]
            encodings = self.tokenizer(texts, truncation=True, max_length=self.max_length)
            labels = [self._class_index(row[self.label_column], split) for row in rows] if self.labels else None
            splits[split] = TokenizedTexts({k: list(v) for k, v in encodings.items()}, labels)
        return splits

    def make_loader(self, split: str, shuffle: bool, with_index: bool, for_cache: bool = False) -> DataLoader:
        self.setup()
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=not for_cache and self.num_workers > 0,
            collate_fn=PadToLongest(self.tokenizer.pad_token_id, labels=self.labels, with_index=with_index),
        )

    def data_fingerprint(self) -> dict[str, Any]:
        """What determines the tokenized training data (JSON-able): files with their sha256, tokenizer, settings."""
        return {
            "files": {split: _file_fingerprint(path) for split, path in self.files.items() if path},
            "tokenizer": {
                "path": str(self.tokenizer_dir.resolve()),
                "files": {p.name: _file_fingerprint(p)["sha256"] for p in _tokenizer_files(self.tokenizer_dir)},
            },
            "max_length": self.max_length,
            "text_column": self.text_column,
            "label_column": self.label_column,
            "classes": self.class_names,
            "held_out": self.fractions,
            "split_seed": self.split_seed,
        }


def load_tokenizer(directory: Path) -> Any:
    """``AutoTokenizer.from_pretrained(directory, local_files_only=True)``, failing in one line."""
    if not directory.is_dir():
        raise DistillError(
            f"data.tokenizer={directory} is not a local directory; give the directory of a saved tokenizer "
            "(the model's directory usually holds one)"
        )
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        first = first_line(error)
        raise DistillError(f"cannot load a tokenizer from {directory}: {first}") from None
    if tokenizer.pad_token_id is None:
        raise DistillError(f"the tokenizer in {directory} has no padding token; give one with a pad token (BERT's [PAD])")
    return tokenizer


def _tokenizer_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name.startswith(TOKENIZER_FILES))


def _file_fingerprint(path: str | Path) -> dict[str, Any]:
    path = Path(str(path)).expanduser().resolve()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "size": path.stat().st_size, "sha256": digest.hexdigest()}
