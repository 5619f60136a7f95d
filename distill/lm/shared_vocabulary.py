"""The tokens two vocabularies share, matched by the bytes they stand for.

Token strings differ by convention between tokenizers (byte-level BPE writes a
space as ``Ġ``, tiktoken stores raw bytes, WordPiece marks continuations with
``##``), so tokens are matched by the text they decode to, as bytes:

- tiktoken-style encodings: each token's bytes;
- Hugging Face byte-level BPE (GPT-2, SmolLM2, the embedded BPE): the token string
  read back through the byte-level alphabet;
- other Hugging Face tokenizers: ``convert_tokens_to_string`` of the one token. For
  WordPiece, ``x`` and ``##x`` decode alike and are left out as ambiguous;
  SentencePiece's leading ``▁`` is dropped by its decoder, so such tokens match
  only roughly.

Special tokens never match, and bytes that two tokens of one vocabulary share are
left out (ambiguous).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from distill.lm.token_spans import byte_level_alphabet, is_byte_level, special_ids


def token_bytes(tokenizer: Any) -> dict[bytes, int]:
    """Each ordinary token's bytes -> its id (ambiguous and special tokens left out)."""
    if hasattr(tokenizer, "encode_ordinary"):  # tiktoken-style
        specials = set(getattr(tokenizer, "_special_tokens", {}).values()) | set(getattr(tokenizer, "_special", {}).values())
        pairs = []
        for token in range(int(tokenizer.n_vocab)):
            if token in specials:
                continue
            try:
                pairs.append((_tiktoken_bytes(tokenizer, token), token))
            except KeyError:  # ids the encoding leaves unused
                continue
        return _unambiguous(pairs)
    specials = special_ids(tokenizer)
    vocab = {token: i for token, i in tokenizer.get_vocab().items() if i not in specials}
    if is_byte_level(tokenizer):
        decode = byte_level_alphabet()
        return _unambiguous([(bytes(decode[c] for c in token), i) for token, i in vocab.items()
                             if all(c in decode for c in token)])
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and "WordPiece" in repr(backend.decoder):
        prefix = getattr(backend.model, "continuing_subword_prefix", "##")
        return _unambiguous([(token.removeprefix(prefix).encode("utf-8"), i) for token, i in vocab.items()])
    return _unambiguous([(tokenizer.convert_tokens_to_string([token]).encode("utf-8"), i) for token, i in vocab.items()])


def shared_vocabulary(student: Any, teacher: Any) -> tuple[Tensor, Tensor]:
    """``(student_ids, teacher_ids)``, both ``[S]`` int64: the tokens that stand for the same bytes in both vocabularies."""
    s_table, t_table = token_bytes(student), token_bytes(teacher)
    pairs = sorted((s_id, t_table[piece]) for piece, s_id in s_table.items() if piece in t_table and piece)
    if not pairs:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    ids = torch.tensor(pairs, dtype=torch.long)
    return ids[:, 0].contiguous(), ids[:, 1].contiguous()


def _unambiguous(pairs: list[tuple[bytes, int]]) -> dict[bytes, int]:
    table: dict[bytes, int] = {}
    seen_twice: set[bytes] = set()
    for piece, token in pairs:
        if piece in table and table[piece] != token:
            seen_twice.add(piece)
        table[piece] = token
    return {piece: token for piece, token in table.items() if piece not in seen_twice}


def _tiktoken_bytes(tokenizer: Any, token: int) -> bytes:
    if hasattr(tokenizer, "decode_single_token_bytes"):
        return tokenizer.decode_single_token_bytes(token)
    return tokenizer.decode_bytes([token])
