"""Byte spans of tokens: offsets in bytes, byte-level pieces placed exactly, the decoding fallback and its refusal."""

from __future__ import annotations

import pytest

from distill.errors import DistillError
from distill.lm.token_spans import encode_with_spans, spans_from_decoding, spans_from_offsets


def test_character_offsets_become_byte_offsets():
    text = "é🤗a"
    tokens = spans_from_offsets(text, [1, 2, 3], [(0, 1), (1, 2), (2, 3)], [False] * 3)
    assert tokens.spans == [(0, 2), (2, 6), (6, 7)]


def test_byte_level_pieces_of_one_character_get_their_own_bytes(bpe_pair, cl100k):
    text = "a 🤗 b"
    bpe, tik = encode_with_spans(bpe_pair[0], text), encode_with_spans(cl100k, text)
    for tokens in (bpe, tik):
        data = text.encode()
        assert b"".join(data[s:e] for s, e in tokens.spans) == data  # end to end, no overlap
        assert all(e > s for s, e in tokens.spans)


class _NoOffsets:
    """A Hugging Face tokenizer seen without its offsets (a slow tokenizer)."""

    is_fast = False

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.all_special_ids = tokenizer.all_special_ids

    def __call__(self, text, add_special_tokens=False):
        return self.tokenizer(text, add_special_tokens=add_special_tokens)

    def decode(self, ids, **options):
        return self.tokenizer.decode(ids, **options)


def test_the_decoding_fallback_places_tokens_where_the_offsets_do(bpe_pair):
    text = "The assert statement, repeated: the assert statement."
    fast = encode_with_spans(bpe_pair[1], text)
    slow = encode_with_spans(_NoOffsets(bpe_pair[1]), text)
    assert slow.ids == fast.ids and slow.spans == fast.spans
    assert spans_from_decoding(bpe_pair[1], text, fast.ids).spans == fast.spans


def test_a_tokenizer_that_changes_the_text_and_gives_no_offsets_is_refused(bert):
    with pytest.raises(DistillError, match="do not spell the text"):
        encode_with_spans(_NoOffsets(bert), "Hello World")  # BERT lower-cases: its pieces spell "hello world"
