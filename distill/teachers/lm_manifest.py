"""The manifest of a top-k teacher cache: what its outputs depend on, so a cache is never reused for another run.

It hashes the teacher's weights, the tokenizer (vocabulary, merges, special
tokens), the chat template and the training examples (token ids and loss
masks, i.e. the data after tokenisation), and records the temperature, ``k``,
the vocabulary size and the storage dtypes. A cache is read only when every
field agrees; otherwise :func:`check_manifest` names the first field that differs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from distill.data.lm_examples import examples_sha256  # noqa: F401 (the data sha256 of a manifest)
from distill.errors import DistillError
from distill.models.fingerprint import weights_sha256

#: bump when the layout changes, so an old cache is refused rather than misread
FORMAT_VERSION = 1

#: the fields in the order a mismatch is reported (the first differing one is named)
FIELDS = (
    "format", "teacher_sha256", "teacher_dtype", "tokenizer_sha256", "chat_template_sha256", "data_sha256",
    "num_examples", "num_tokens", "vocabulary", "temperature", "top_k", "log_prob_dtype",
)


def tokenizer_sha256(tokenizer: Any) -> str:
    """A hash of what makes a tokenizer's ids: its vocabulary, merges, normalisation and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    payload = {
        # a fast tokenizer's full definition (vocab, merges, pre-tokenizer, added tokens) as tokenizers writes it
        "backend": backend.to_str() if backend is not None else None,
        "vocab": None if backend is not None else sorted(tokenizer.get_vocab().items()),
        "special_tokens": {str(k): str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())},
    }
    return _sha256_json(payload)


def chat_template_sha256(tokenizer: Any) -> str | None:
    """A hash of the tokenizer's chat template, ``None`` when it has none."""
    template = getattr(tokenizer, "chat_template", None)
    return None if template is None else hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()


def lm_cache_manifest(
    teacher: nn.Module,
    tokenizer: Any,
    data_sha256: str,
    token_counts: Sequence[int],
    *,
    vocabulary: int,
    temperature: float,
    top_k: int,
    log_prob_dtype: str = "float16",
    teacher_dtype: str | None = None,
) -> dict[str, Any]:
    """The manifest fields of a cache of ``teacher``'s top-``top_k`` next-token distributions at ``temperature``."""
    return {
        "format": FORMAT_VERSION,
        "teacher_sha256": weights_sha256(teacher),
        "teacher_dtype": None if teacher_dtype is None else str(teacher_dtype),
        "tokenizer_sha256": tokenizer_sha256(tokenizer),
        "chat_template_sha256": chat_template_sha256(tokenizer),
        "data_sha256": data_sha256,
        "num_examples": len(token_counts),
        "num_tokens": int(sum(int(n) for n in token_counts)),
        "vocabulary": int(vocabulary),
        "temperature": float(temperature),
        "top_k": int(top_k),
        "log_prob_dtype": str(log_prob_dtype),
    }


def check_manifest(found: Mapping[str, Any], expected: Mapping[str, Any], directory: Path) -> None:
    """Nothing when ``found`` (the cache's manifest) matches ``expected`` (this run's); else a one-line error."""
    for field in FIELDS:
        if found.get(field) != expected.get(field):
            raise DistillError(
                f"the top-k teacher cache {directory} was built with a different {field} "
                f"({_short(found.get(field))}, this run: {_short(expected.get(field))}); it is not mixed with this "
                "run's outputs: give teacher.cache_dir=NEW_DIR (or delete that directory), or set teacher.cache=false"
            )


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:  # a sha256
        return value[:12]
    return repr(value)


def _sha256_json(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
