"""Token examples for causal language modelling: ``input_ids`` and ``labels`` (-100: no loss there).

Three kinds of source:

- plain text: each document is tokenized, ended with the EOS token and cut into
  blocks of ``block_size`` tokens. A block never spans two documents (the last
  block of a document is shorter and padded), so no token attends across a
  document boundary and no padding or cross-document mask is needed;
- prompt/completion pairs: loss on the completion (and its EOS) only;
- chat ``messages``: rendered by the tokenizer's chat template, loss on the
  assistant turns only.

Labels equal the input tokens where they carry loss; the shift (the logits at
position t predict token t+1) is done by the losses and metrics, in one place
(:mod:`distill.lm.tokens`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from distill.errors import DistillError

#: the label of a position that carries no loss (PyTorch's cross-entropy default)
IGNORE_INDEX = -100

Example = tuple[list[int], list[int]]  # (input_ids, labels)


def text_blocks(documents: Iterable[str], tokenizer: Any, block_size: int) -> list[Example]:
    """Documents cut into blocks of at most ``block_size`` tokens, each block inside one document."""
    examples = []
    for document in documents:
        ids = tokenizer(document, add_special_tokens=False)["input_ids"] + [_eos(tokenizer)]
        for start in range(0, len(ids), block_size):
            block = ids[start:start + block_size]
            if len(block) >= 2:  # one token predicts nothing
                examples.append((block, list(block)))
    return examples


def prompt_completion(pairs: Iterable[Mapping[str, str]], tokenizer: Any, block_size: int) -> list[Example]:
    """``{"prompt": ..., "completion": ...}`` records: loss on the completion tokens and the closing EOS."""
    examples = []
    for number, pair in enumerate(pairs, 1):
        if not isinstance(pair.get("prompt"), str) or not isinstance(pair.get("completion"), str):
            raise DistillError(f"record {number} needs string fields 'prompt' and 'completion', got keys {sorted(pair)}")
        prompt = tokenizer(pair["prompt"], add_special_tokens=False)["input_ids"]
        completion = tokenizer(pair["completion"], add_special_tokens=False)["input_ids"] + [_eos(tokenizer)]
        ids = (prompt + completion)[:block_size]
        labels = ([IGNORE_INDEX] * len(prompt) + completion)[:block_size]
        examples.append((ids, labels))
    return examples


def chat(conversations: Iterable[Mapping[str, Any]], tokenizer: Any, block_size: int) -> list[Example]:
    """``{"messages": [{"role": ..., "content": ...}, ...]}`` records: loss on the assistant turns only.

    An assistant turn's tokens are found by rendering the conversation up to
    that turn with and without it; the template must render a prefix of a
    conversation as a prefix of its tokens (the usual templates do).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise DistillError("chat data needs a tokenizer with a chat template; give data.tokenizer=DIR of a chat model")
    examples = []
    for number, record in enumerate(conversations, 1):
        messages = record.get("messages")
        if not isinstance(messages, Sequence) or not messages:
            raise DistillError(f"chat record {number} needs a non-empty 'messages' list")
        ids = _render(tokenizer, messages, False)
        labels = [IGNORE_INDEX] * len(ids)
        for turn, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            start = len(_render(tokenizer, messages[:turn], True)) if turn else 0
            end = len(_render(tokenizer, messages[:turn + 1], False))
            if ids[:end] != _render(tokenizer, messages[:turn + 1], False):
                raise DistillError(f"chat record {number}: the chat template does not render a conversation's start as a prefix")
            labels[start:end] = ids[start:end]
        examples.append((ids[:block_size], labels[:block_size]))
    return examples


def _render(tokenizer: Any, messages: Sequence[Mapping[str, Any]], generation_prompt: bool) -> list[int]:
    if not messages:
        return []
    rendered = tokenizer.apply_chat_template(list(messages), tokenize=True, add_generation_prompt=generation_prompt)
    if isinstance(rendered, Mapping) or hasattr(rendered, "keys"):  # a BatchEncoding in newer transformers
        rendered = rendered["input_ids"]
    return list(rendered)


def _eos(tokenizer: Any) -> int:
    if tokenizer.eos_token_id is None:
        raise DistillError("the tokenizer has no end-of-text token; give one that has (eos_token)")
    return int(tokenizer.eos_token_id)


def examples_sha256(examples: Iterable[tuple[Sequence[int], Sequence[int]]], block_size: int, pad_id: int) -> str:
    """A hash of the training examples as the models see them: ``(input_ids, labels)`` pairs, block size, padding."""
    digest = hashlib.sha256(f"{int(block_size)}|{int(pad_id)}|".encode())
    for ids, labels in examples:
        digest.update(json.dumps([list(map(int, ids)), list(map(int, labels))]).encode())
        digest.update(b"\n")
    return digest.hexdigest()
