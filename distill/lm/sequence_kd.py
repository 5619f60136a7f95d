"""Sequence-level KD (Kim & Rush, "Sequence-Level Knowledge Distillation", EMNLP 2016).

The teacher completes every training prompt **once** (greedy or sampled, see
:class:`~distill.lm.generation.GenerationSettings`); the student then trains on
prompt + the teacher's completion, with loss on the completion's tokens only
(token cross-entropy on them is Kim & Rush's objective; a token divergence to
the live teacher on the same tokens can be added). The completions are stored
on disk with their prompts (token ids, pair by pair) in ``<cache_dir>/sequence_kd/<key>.pt``, the key a
hash of everything that determines them: the teacher's weights, the tokenizer,
the prompts, the block size, the generation settings, the seed and the batch
size. A different teacher, prompt set or setting is another file (generated
anew); a file whose stored description or prompts do not match this run's is a
one-line error. Nothing is regenerated per step or per epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distill.cache_lock import cache_lock
from distill.errors import DistillError
from distill.io import atomic_torch_save
from distill.lm.generation import GenerationSettings, as_settings, generate_completions, prompts_of
from distill.lm.tokens import IGNORE_INDEX
from distill.models.fingerprint import weights_sha256

log = logging.getLogger("distill")

Example = tuple[list[int], list[int]]  # (input_ids, labels), as distill.data.lm_examples
FORMAT = 2  # 2: the prompts are stored beside their completions


class SequenceKD:
    """The teacher's completions of the training prompts, generated once and cached (Kim & Rush 2016).

    Args:
        generation: how the teacher generates (:class:`~distill.lm.generation.GenerationSettings`).
        seed: the seed of the sampling (unused when greedy, but part of the cache key).
        batch_size: prompts per ``generate`` call.
        device: where the teacher generates (``None``: CUDA when available, else the CPU); it is moved back after.
    """

    def __init__(self, generation: GenerationSettings | Mapping[str, Any] | None = None, seed: int = 0,
                 batch_size: int = 32, device: str | None = None) -> None:
        if int(batch_size) < 1:
            raise DistillError(f"sequence_kd.batch_size must be >= 1, got {batch_size}")
        self.generation, self.seed, self.batch_size = as_settings(generation), int(seed), int(batch_size)
        self.device = device

    def manifest(self, teacher: nn.Module, tokenizer: Any, prompts: Sequence[Sequence[int]], block_size: int) -> dict[str, Any]:
        """What determines the completions; its hash names the cache file."""
        return {
            "format": FORMAT,
            "teacher_sha256": weights_sha256(teacher),
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "prompts_sha256": _sha256(json.dumps([list(p) for p in prompts])),
            "prompts": len(prompts),
            "block_size": int(block_size),
            "generation": self.generation.describe(),
            "seed": self.seed,
            "batch_size": self.batch_size,
        }

    def examples(self, teacher: nn.Module, examples: Sequence[Example], tokenizer: Any, block_size: int,
                 cache_dir: str | Path) -> list[Example]:
        """``examples`` with each completion replaced by the teacher's (read from the cache, or generated and cached)."""
        prompts = [_prompt(ids, labels, self.generation.prompt_length) for ids, labels in examples]
        manifest = self.manifest(teacher, tokenizer, prompts, block_size)
        path = Path(cache_dir).expanduser() / "sequence_kd" / f"{_sha256(json.dumps(manifest, sort_keys=True))[:16]}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with cache_lock(path, "the teacher's sequence-KD completions"):
            if path.is_file():
                completions = _read(path, manifest, prompts)
                log.info("Sequence-level KD: %d teacher completions read from %s", len(completions), path)
            else:
                log.info("Sequence-level KD: the teacher completes %d training prompts, once (cached in %s)", len(prompts), path)
                completions = self.generate(teacher, prompts, tokenizer, block_size)
                atomic_torch_save({"manifest": manifest, "prompts": [list(p) for p in prompts], "completions": completions}, path)
                log.info("Sequence-level KD: %d teacher completions generated and cached in %s", len(completions), path)
        made = [(p + c, [IGNORE_INDEX] * len(p) + c) for p, c in zip(prompts, completions) if c]
        if not made:
            raise DistillError("no training prompt left room for a completion; use shorter prompts or a larger data.block_size")
        if len(made) < len(prompts):
            log.info("Sequence-level KD: %d prompt(s) fill their block and are left out", len(prompts) - len(made))
        return made

    def generate(self, teacher: nn.Module, prompts: Sequence[list[int]], tokenizer: Any, block_size: int) -> list[list[int]]:
        """The teacher's completion of every prompt, cut to the room left in its block (empty: no room)."""
        eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        pad = eos if pad is None else pad
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        home = next(teacher.parameters()).device
        teacher.to(device)
        completions: list[list[int]] = []
        try:
            for start in range(0, len(prompts), self.batch_size):
                group = list(prompts[start:start + self.batch_size])
                room = [block_size - len(p) for p in group]
                todo = [i for i, r in enumerate(room) if r > 0]
                made = [[] for _ in group]
                if todo:
                    generated = generate_completions(
                        teacher, [group[i] for i in todo], self.generation, eos_token_id=eos, pad_token_id=pad,
                        seed=self.seed + start, device=device, max_new_tokens=min(self.generation.max_new_tokens, max(room)),
                    )
                    for i, completion in zip(todo, generated):
                        made[i] = completion[: room[i]]
                completions.extend(made)
        finally:
            teacher.to(home)
        return completions

    def apply(self, datamodule: Any, teacher: nn.Module, cache_dir: str | Path) -> list[Example]:
        """Train ``datamodule`` on the teacher's completions from now on; returns the training examples it had."""
        dataset = datamodule.datasets["train"]
        original = list(dataset.examples)
        dataset.examples = self.examples(teacher, original, datamodule.tokenizer, datamodule.block_size, cache_dir)
        return original

    def __repr__(self) -> str:
        return f"SequenceKD(generation={self.generation}, seed={self.seed}, batch_size={self.batch_size})"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the tokenizer's tokens and special tokens (what the token ids mean)."""
    vocabulary = sorted(tokenizer.get_vocab().items())
    special = [tokenizer.eos_token_id, tokenizer.pad_token_id, getattr(tokenizer, "bos_token_id", None)]
    return _sha256(json.dumps([vocabulary, special, getattr(tokenizer, "chat_template", None)]))


def _prompt(ids: list[int], labels: list[int], prompt_length: int | None) -> list[int]:
    return prompts_of(torch.tensor([ids]), None, torch.tensor([labels]), prompt_length)[0]


def _read(path: Path, manifest: Mapping[str, Any], prompts: Sequence[Sequence[int]]) -> list[list[int]]:
    try:
        stored = torch.load(path, weights_only=True)
        stored_manifest, stored_prompts, completions = stored["manifest"], stored["prompts"], stored["completions"]
    except Exception as error:  # a truncated or foreign file
        raise DistillError(f"cannot read the sequence-KD cache {path} ({type(error).__name__}); delete it to generate again") from None
    if stored_manifest != dict(manifest) or len(completions) != manifest["prompts"]:
        differ = sorted(k for k in set(manifest) | set(stored_manifest) if manifest.get(k) != stored_manifest.get(k))
        raise DistillError(
            f"the sequence-KD cache {path} was written for another {', '.join(differ) or 'prompt count'} than this run's; "
            "delete it to generate again"
        )
    if [list(map(int, p)) for p in stored_prompts] != [list(p) for p in prompts]:  # the manifest has only their hash
        raise DistillError(f"the sequence-KD cache {path} holds other prompts than this run's; delete it to generate again")
    return [list(map(int, c)) for c in completions]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
