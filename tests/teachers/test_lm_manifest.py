"""The top-k cache's manifest: each hash changes with what it hashes, and a mismatch names its field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.teachers.lm_manifest import (
    FIELDS,
    chat_template_sha256,
    check_manifest,
    examples_sha256,
    tokenizer_sha256,
)

def bpe(merges=(("a", "b"),)):
    """A three-token BPE with ``merges``, as a transformers fast tokenizer (built in memory)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "ba": 4}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab, list(merges), unk_token="<unk>")),
                                   unk_token="<unk>")


@pytest.fixture(scope="module")
def tokenizer():
    return bpe()


def test_the_tokenizer_hash_follows_vocabulary_merges_and_special_tokens(tokenizer):
    assert tokenizer_sha256(bpe()) == tokenizer_sha256(tokenizer)
    added = bpe()
    added.add_tokens(["<new>"])
    special = bpe()
    special.add_special_tokens({"pad_token": "<pad>"})
    merged = bpe(merges=(("b", "a"),))
    hashes = {tokenizer_sha256(t) for t in (tokenizer, added, special, merged)}
    assert len(hashes) == 4


def test_the_chat_template_hash(tokenizer):
    chat = copy.deepcopy(tokenizer)
    assert chat_template_sha256(tokenizer) is None
    chat.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    other = copy.deepcopy(chat)
    other.chat_template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    assert None is not chat_template_sha256(chat) != chat_template_sha256(other)


def test_the_data_hash_follows_tokens_loss_masks_block_and_padding():
    examples = [([1, 2, 3], [-100, 2, 3]), ([4, 5], [4, 5])]
    base = examples_sha256(examples, 8, 0)
    assert examples_sha256(list(examples), 8, 0) == base
    variants = [
        examples_sha256([([1, 2, 3], [-100, -100, 3]), examples[1]], 8, 0),  # a loss mask
        examples_sha256([([1, 2, 4], [-100, 2, 4]), examples[1]], 8, 0),  # a token
        examples_sha256(examples[::-1], 8, 0),  # the example order (indices)
        examples_sha256(examples, 16, 0),
        examples_sha256(examples, 8, 1),
    ]
    assert base not in variants and len(set(variants)) == len(variants)


@pytest.mark.parametrize("field", FIELDS)
def test_a_mismatch_names_the_field_in_one_line(field):
    expected = {name: f"{name}-value" for name in FIELDS}
    found = {**expected, field: "other"}
    with pytest.raises(DistillError, match=rf"different {field} \('other', this run: '{field}-value'\)") as error:
        check_manifest(found, expected, Path("/caches/x"))
    assert "\n" not in str(error.value) and "teacher.cache=false" in str(error.value)
    check_manifest(expected, dict(expected), Path("/caches/x"))  # equal: nothing raised
