"""The loss-mask audit: one example decoded with the tokens that carry loss marked, to see the mask is right."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distill.lm.tokens import IGNORE_INDEX


def mask_audit(input_ids: Sequence[int], labels: Sequence[int], tokenizer: Any, limit: int = 64) -> str:
    """``input_ids`` decoded token by token; a token that carries loss (its label is kept and a token before
    it predicts it, i.e. not the first) is shown as ``[token]``, the others as they are; padding is cut."""
    pieces = []
    for position, (token, label) in enumerate(list(zip(input_ids, labels))[:limit]):
        text = tokenizer.decode([int(token)])
        pieces.append(f"[{text}]" if label != IGNORE_INDEX and position > 0 else text)
    carrying = sum(1 for p, label in enumerate(labels) if label != IGNORE_INDEX and p > 0)
    return f"{carrying} of {len(labels)} tokens carry loss ([...]: loss-carrying)\n" + "".join(pieces)
