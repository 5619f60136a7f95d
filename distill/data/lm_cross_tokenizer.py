"""Token examples in two tokenizations of the same text: the student's, the teacher's, and their alignment.

For distillation across tokenizers (:mod:`distill.lm.alignment`). Documents are
cut into blocks as for one tokenizer (:func:`distill.data.lm_examples.text_blocks`:
in the student's tokens, each block inside one document, EOS at a document's
end); the text a student block covers is tokenized again by the teacher (with its
EOS where the block ends the document), and the two are aligned by byte offsets.
Batches then hold, besides the student's ``input_ids``, ``attention_mask`` and
``labels``, the teacher's ``teacher_input_ids`` and ``teacher_attention_mask``
and an ``alignment`` ``[P, 3]`` of (student position, teacher position, exact)
rows padded with -1 (see :func:`distill.lm.alignment.prediction_pairs`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from distill.data.lm_examples import IGNORE_INDEX
from distill.errors import DistillError
from distill.lm.alignment import align, prediction_pairs
from distill.lm.token_spans import TokenSpans, encode_with_spans

Pair = tuple[int, int, bool]


@dataclass(frozen=True)
class CrossExample:
    """One block: the student's ids and labels, the teacher's ids of the same text, the aligned pairs."""

    ids: list[int]
    labels: list[int]
    teacher_ids: list[int]
    pairs: list[Pair]


def cross_text_blocks(documents: Iterable[str], student: Any, teacher: Any, block_size: int,
                      teacher_block_size: int) -> list[CrossExample]:
    """Documents cut into student blocks of at most ``block_size`` tokens, each with the teacher's tokens of its text.

    The teacher's tokens are cut at ``teacher_block_size``; pairs past the cut are dropped.
    """
    examples = []
    for document in documents:
        data = document.encode("utf-8")
        tokens = encode_with_spans(student, document)
        tokens = TokenSpans(tokens.ids + [_eos(student)], tokens.spans + [(len(data), len(data))], tokens.special + [True])
        for start in range(0, len(tokens), block_size):
            block = _slice(tokens, start, start + block_size)
            if len(block) < 2:  # one token predicts nothing
                continue
            ends_document = start + block_size >= len(tokens)
            teacher_tokens = _teacher_tokens(teacher, data, block, ends_document, teacher_block_size)
            pairs = prediction_pairs(align(block, teacher_tokens), block, teacher_tokens)
            examples.append(CrossExample(block.ids, list(block.ids), teacher_tokens.ids, pairs))
    return examples


class CrossTokenExamples(torch.utils.data.Dataset):
    """Cross-tokenizer examples padded on the right: student and teacher blocks and a ``[block_size, 3]`` alignment."""

    def __init__(self, examples: list[CrossExample], block_size: int, teacher_block_size: int, pad_id: int,
                 teacher_pad_id: int, labels: bool = True, with_index: bool = False) -> None:
        #: ``(ids, labels)`` per example, as :class:`~distill.data.lm_text.TokenExamples` has them (audits, reports)
        self.examples = [(e.ids, e.labels) for e in examples]
        self.cross_examples = examples
        self.block_size, self.teacher_block_size = block_size, teacher_block_size
        self.pad_id, self.teacher_pad_id = pad_id, teacher_pad_id
        self.labels, self.with_index = labels, with_index

    def __len__(self) -> int:
        return len(self.cross_examples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        example = self.cross_examples[i]
        item = dict(zip(("input_ids", "attention_mask"), _padded(example.ids, self.block_size, self.pad_id)))
        if self.labels:
            item["labels"] = torch.tensor(example.labels + [IGNORE_INDEX] * (self.block_size - len(example.labels)))
        item["teacher_input_ids"], item["teacher_attention_mask"] = _padded(
            example.teacher_ids, self.teacher_block_size, self.teacher_pad_id)
        alignment = torch.full((self.block_size, 3), -1, dtype=torch.long)
        if example.pairs:
            alignment[: len(example.pairs)] = torch.tensor([(s, t, int(x)) for s, t, x in example.pairs])
        item["alignment"] = alignment
        if self.with_index:
            item["index"] = torch.tensor(i)
        return item


def _slice(tokens: TokenSpans, start: int, stop: int) -> TokenSpans:
    return TokenSpans(tokens.ids[start:stop], tokens.spans[start:stop], tokens.special[start:stop])


def _teacher_tokens(teacher: Any, data: bytes, block: TokenSpans, ends_document: bool, limit: int) -> TokenSpans:
    """The teacher's tokens of the text the student block covers, with spans in the document's bytes."""
    ordinary = [span for span, special in zip(block.spans, block.special) if not special]
    lo = min((s for s, _ in ordinary), default=len(data))
    hi = max((e for _, e in ordinary), default=len(data))
    while lo > 0 and lo < len(data) and data[lo] & 0xC0 == 0x80:  # a block may start inside a character
        lo -= 1
    while hi < len(data) and data[hi] & 0xC0 == 0x80:
        hi += 1
    tokens = encode_with_spans(teacher, data[lo:hi].decode("utf-8"))
    ids, spans, special = tokens.ids, [(s + lo, e + lo) for s, e in tokens.spans], tokens.special
    if ends_document:
        ids, spans, special = ids + [_eos(teacher)], spans + [(hi, hi)], special + [True]
    return TokenSpans(ids[:limit], spans[:limit], special[:limit])


def _padded(ids: list[int], length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    pad = length - len(ids)
    return torch.tensor(ids + [pad_id] * pad), torch.tensor([1] * len(ids) + [0] * pad)


def _eos(tokenizer: Any) -> int:
    if getattr(tokenizer, "eos_token_id", None) is None:
        raise DistillError("a tokenizer of the cross-tokenizer data has no end-of-text token; give one that has (eos_token)")
    return int(tokenizer.eos_token_id)
