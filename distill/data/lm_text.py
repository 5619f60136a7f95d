"""Causal language-modelling data: local text or JSONL files, or the embedded pydoc corpus by default.

Batches are dicts of ``input_ids``, ``attention_mask`` and ``labels`` (``-100``
where no loss is taken: prompts, user turns, padding), each ``B × block_size``;
distill's batch splitting passes ``input_ids`` and ``attention_mask`` to the
models and takes ``labels`` out. How each kind of file becomes examples, and
how document boundaries are kept, is in :mod:`distill.data.lm_examples`; how files become records
(and records are held out) in :mod:`distill.data.lm_records`.
"""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from distill.data import lm_examples
from distill.data.base import SPLITS, DistillDataModule
from distill.data.bpe_tokenizer import bpe_tokenizer
from distill.data.lm_cross_tokenizer import CrossTokenExamples, cross_text_blocks
from distill.data.lm_records import hold_out, read_records, record_text, records_kind
from distill.data.pydoc_corpus import pydoc_topics, split_topics
from distill.errors import DistillError


class TokenExamples(Dataset):
    """Examples padded on the right to ``block_size``: dicts of ``input_ids``, ``attention_mask``, ``labels``."""

    def __init__(self, examples: list[lm_examples.Example], block_size: int, pad_id: int, labels: bool = True,
                 with_index: bool = False) -> None:
        self.examples, self.block_size, self.pad_id = examples, block_size, pad_id
        self.labels, self.with_index = labels, with_index

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids, labels = self.examples[i]
        pad = self.block_size - len(ids)
        item = {
            "input_ids": torch.tensor(ids + [self.pad_id] * pad),
            "attention_mask": torch.tensor([1] * len(ids) + [0] * pad),
        }
        if self.labels:
            item["labels"] = torch.tensor(labels + [lm_examples.IGNORE_INDEX] * pad)
        if self.with_index:
            item["index"] = torch.tensor(i)
        return item


class LanguageModelDataModule(DistillDataModule):
    """Token blocks for next-token prediction.

    A :class:`~distill.data.base.DistillDataModule` (the contract the run relies on): the base checks
    the loader options and makes the loaders from :meth:`make_loader`; ``labels=False`` drops the
    labels of every split here (a language model's evaluation needs none of the data's).

    Args:
        train_file: ``None``: the embedded corpus (CPython's ``pydoc_data.topics``, split by topic).
            Else a ``.txt`` file (one document), a directory of ``.txt`` files (one
            document each) or a ``.jsonl`` file whose records hold ``text`` (documents),
            ``prompt`` and ``completion`` (loss on the completion), or ``messages``
            (a chat, rendered by the tokenizer's chat template; loss on assistant turns).
        val_file, test_file: the same kinds; without them, whole documents/records of
            ``train_file`` are held out (``val_fraction``, ``test_fraction``, ``split_seed``).
        tokenizer: a directory holding a Hugging Face tokenizer (e.g. the teacher's);
            ``None``: a byte-level BPE of ``vocab_size`` tokens trained on the training
            split and cached under ``cache_dir``.
        block_size: tokens per example (longer documents are cut, shorter ones padded).
        labels: ``False``: no ``labels`` in the batches (distillation without a data loss).
        with_index: add each example's index in its split (``index``).
        teacher_tokenizer: a tokenizer directory (or ``.gguf`` file) of a teacher with another
            tokenizer; the batches then also hold the teacher's tokens of the same text and their
            alignment (:mod:`distill.data.lm_cross_tokenizer`; plain-text data only).
        teacher_vocab_size: the same with the embedded byte-level BPE of this many tokens as the teacher's.
        teacher_block_size: the teacher's tokens per example (default: ``block_size``).
    """

    name = "lm_text"
    #: the run dispatches on this: batches of token sequences, models that predict the next token
    is_language_model = True

    def __init__(
        self,
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
        tokenizer: str | None = None,
        vocab_size: int = 2048,
        block_size: int = 128,
        batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        cache_dir: str = "~/.cache/distill",
        labels: bool = True,
        with_index: bool = False,
        teacher_tokenizer: str | None = None,
        teacher_vocab_size: int | None = None,
        teacher_block_size: int | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers, labels, with_index)
        if teacher_tokenizer and teacher_vocab_size:
            raise DistillError("give data.teacher_tokenizer=DIR or data.teacher_vocab_size=N, not both")
        self.teacher_tokenizer_path = teacher_tokenizer or None
        self.teacher_vocab_size = int(teacher_vocab_size) if teacher_vocab_size else None
        self.teacher_block_size = int(teacher_block_size or block_size)
        if block_size < 2:
            raise DistillError(f"data.block_size={block_size}: a block needs at least 2 tokens")
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        self.tokenizer_path, self.vocab_size, self.block_size = tokenizer, int(vocab_size), int(block_size)
        self.fractions, self.split_seed = (float(val_fraction), float(test_fraction)), int(split_seed)
        self.cache_dir = cache_dir
        if val_file is None and test_file is not None or (train_file is None and (val_file or test_file)):
            raise DistillError("give val_file and test_file together with a train_file (or none of them)")
        for split, path in self.files.items():
            if path is not None and not Path(str(path)).expanduser().exists():
                raise DistillError(f"data.{split}_file={path} does not exist")

    # -- what the models need to know before any batch ---------------------------
    @cached_property
    def records(self) -> dict[str, list[Any]]:
        """The raw documents or JSON records of each split."""
        if self.files["train"] is None:
            return split_topics(pydoc_topics(), *self.fractions, seed=self.split_seed)
        if self.files["val"] is not None:
            return {split: read_records(self.files[split]) if self.files[split] else [] for split in SPLITS}
        return hold_out(read_records(self.files["train"]), *self.fractions, seed=self.split_seed)

    @cached_property
    def tokenizer(self) -> Any:
        if self.tokenizer_path:
            from distill.models.causal_lm import load_tokenizer

            return load_tokenizer(self.tokenizer_path)
        texts = [record_text(r) for r in self.records["train"]]
        return bpe_tokenizer(texts, self.vocab_size, self.cache_dir)

    @property
    def cross_tokenizer(self) -> bool:
        """Whether the teacher reads its own tokenization (``teacher_tokenizer`` or ``teacher_vocab_size`` given)."""
        return bool(self.teacher_tokenizer_path or self.teacher_vocab_size)

    @cached_property
    def teacher_tokenizer(self) -> Any:
        """The teacher's tokenizer: the student's unless ``teacher_tokenizer`` or ``teacher_vocab_size`` is given."""
        if self.teacher_tokenizer_path:
            from distill.models.causal_lm import load_tokenizer

            return load_tokenizer(self.teacher_tokenizer_path)
        if self.teacher_vocab_size:
            return bpe_tokenizer([record_text(r) for r in self.records["train"]], self.teacher_vocab_size, self.cache_dir)
        return self.tokenizer

    def teacher_data(self) -> LanguageModelDataModule:
        """The same data in the teacher's tokenization alone (to train or evaluate the teacher by itself)."""
        if not self.cross_tokenizer:
            return self
        data = LanguageModelDataModule(
            None, tokenizer=self.teacher_tokenizer_path, vocab_size=self.teacher_vocab_size or self.vocab_size,
            block_size=self.teacher_block_size, batch_size=self.batch_size, num_workers=self.num_workers,
            val_fraction=self.fractions[0], test_fraction=self.fractions[1], split_seed=self.split_seed,
            cache_dir=self.cache_dir, labels=self.labels, with_index=self.with_index,
        )
        data.files, data.records = dict(self.files), self.records  # the same documents and splits
        return data

    @property
    def num_classes(self) -> int:
        """The vocabulary size: the number of tokens the models predict."""
        return len(self.tokenizer)

    @property
    def kind(self) -> str:
        """``text``, ``prompt_completion`` or ``chat``: what the training records hold."""
        return records_kind(self.records["train"])

    def examples(self, split: str) -> list[lm_examples.Example]:
        records = self.records[split]
        builders = {"text": lm_examples.text_blocks, "prompt_completion": lm_examples.prompt_completion,
                    "chat": lm_examples.chat}
        kind = records_kind(records) if records else "text"
        texts = [record_text(r) for r in records] if kind == "text" else records
        return builders[kind](texts, self.tokenizer, self.block_size)

    @cached_property
    def datasets(self) -> dict[str, TokenExamples]:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        made = {}
        for split in SPLITS:
            if self.cross_tokenizer:
                made[split] = self._cross_examples(split, int(pad))
                continue
            examples = self.examples(split)
            if not examples:
                raise DistillError(f"the {split} split of the language-model data is empty; give more text or {split}_file")
            made[split] = TokenExamples(examples, self.block_size, int(pad), self.labels, self.with_index)
        return made

    def _cross_examples(self, split: str, pad: int) -> CrossTokenExamples:
        kind = records_kind(self.records[split]) if self.records[split] else "text"
        if kind != "text":
            raise DistillError(
                f"a teacher with another tokenizer works on plain-text data only for now, but the records are {kind}; "
                "give text documents, or the teacher's own tokenizer (drop data.teacher_tokenizer/teacher_vocab_size)"
            )
        texts = [record_text(r) for r in self.records[split]]
        examples = cross_text_blocks(texts, self.tokenizer, self.teacher_tokenizer, self.block_size, self.teacher_block_size)
        if not examples:
            raise DistillError(f"the {split} split of the language-model data is empty; give more text or {split}_file")
        teacher = self.teacher_tokenizer
        teacher_pad = teacher.pad_token_id if teacher.pad_token_id is not None else teacher.eos_token_id
        return CrossTokenExamples(examples, self.block_size, self.teacher_block_size, pad, int(teacher_pad),
                                  self.labels, self.with_index)

    def tokens(self, split: str) -> int:
        """How many tokens of ``split`` carry loss (the first of each block predicts nothing and is not counted)."""
        return sum(sum(1 for label in labels[1:] if label != lm_examples.IGNORE_INDEX) for _, labels in self.examples(split))

    # -- the base's hooks: splits, loaders, fingerprint -----------------------------------
    def load_splits(self) -> dict[str, Dataset]:
        return dict(self.datasets)

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        # labels and with_index may change after construction (the run, the teacher cache): the data sets follow
        for dataset in self.datasets.values():
            dataset.labels, dataset.with_index = self.labels, self.with_index

    def make_loader(self, split: str, shuffle: bool, with_index: bool, for_cache: bool = False) -> DataLoader:
        self.setup()
        dataset = self.datasets[split]
        if dataset.with_index != with_index:  # a view of the same examples (the cache's loader), the split untouched
            dataset = copy.copy(dataset)
            dataset.with_index = with_index
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=not for_cache and self.num_workers > 0)

    def data_fingerprint(self) -> dict[str, Any]:
        """The training examples as the student sees them (a hash of their tokens and loss masks) and where the
        teacher's tokens come from when it reads its own tokenization."""
        train = self.datasets["train"]
        return {
            "examples_sha256": lm_examples.examples_sha256(train.examples, self.block_size, train.pad_id),
            "teacher_tokenizer": self.teacher_tokenizer_path or self.teacher_vocab_size,
            "teacher_block_size": self.teacher_block_size if self.cross_tokenizer else None,
        }
