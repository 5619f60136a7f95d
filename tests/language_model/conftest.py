"""Tiny causal LMs and tokenizers made in tmp_path (offline): 2 layers, width 32, vocabulary ~300, blocks of 32."""

from __future__ import annotations

from pathlib import Path

import pytest

TEXTS = [
    "The assert statement is a convenient way to insert debugging assertions into a program.",
    "A for loop iterates over the items of a sequence, in the order that they appear.",
    "The while statement repeats a block as long as an expression is true.",
    "Functions are defined with def; a function body is a block of statements.",
] * 3


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    from distill.data.bpe_tokenizer import bpe_tokenizer

    folder = tmp_path_factory.mktemp("lm-tokenizer")
    tokenizer = bpe_tokenizer(TEXTS, 300, folder / "cache")
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    return folder / "tokenizer"


def gpt2_config(vocab_size: int, layers: int = 2, width: int = 32, positions: int = 32, **extra):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab_size, n_layer=layers, n_embd=width, n_head=2, n_positions=positions,
                      resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, **extra)


@pytest.fixture(scope="session")
def save_tiny_gpt2(tmp_path_factory, tiny_tokenizer_dir):
    """``save(name, layers=2, width=32, vocab_rows=None)``: a GPT-2 with the tiny tokenizer, saved by save_pretrained."""
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("lm-models")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))

    def save(name: str, layers: int = 2, width: int = 32, vocab_rows: int | None = None, seed: int = 0) -> Path:
        folder = root / name
        if not folder.exists():
            torch.manual_seed(seed)
            GPT2LMHeadModel(gpt2_config(vocab_rows or len(tokenizer), layers, width)).save_pretrained(str(folder))
            tokenizer.save_pretrained(str(folder))
        return folder

    return save


@pytest.fixture(scope="session")
def make_gpt2():
    """``make(vocab_size, layers=2, width=32, ...)``: a new tiny GPT2LMHeadModel (train mode)."""
    from transformers import GPT2LMHeadModel

    return lambda vocab_size, *args, **kwargs: GPT2LMHeadModel(gpt2_config(vocab_size, *args, **kwargs))
