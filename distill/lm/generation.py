"""Completions a causal LM generates for the prompts of a batch: shared by sequence-level KD and on-policy distillation.

A sample's **prompt** is its tokens before its first loss-carrying token (the
data's prompt mask: a prompt/completion record's prompt, a chat's turns before
the first assistant turn, the first token of a text block), or its first
``prompt_length`` tokens when that setting is given (plain text has no prompts).
Prompts are left-padded for ``generate``, as decoder-only models need; each
completion is then put back behind its prompt in a right-padded row of the
data's layout (:func:`completion_rows`): labels -100 on the prompt and the
padding, the generated tokens (up to and including the first EOS) as labels.
Generation runs in eval mode under ``torch.no_grad()`` and restores every
submodule's train/eval mode afterwards (:func:`generating`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX
from distill.lm.vocabulary import VocabularySlice, output_rows


@dataclass(frozen=True)
class GenerationSettings:
    """How completions are generated (Hugging Face ``generate``).

    Args:
        max_new_tokens: the most tokens a completion has (also cut to the room left in a row).
        do_sample: ``False``: greedy decoding; ``True``: sampling at ``temperature`` with nucleus ``top_p``
            (and no top-k cut: Hugging Face's default top-k of 50 is switched off).
        temperature: the sampling temperature (> 0), used only when ``do_sample``. It is not the loss
            temperature, which is the loss term's own setting.
        top_p: nucleus sampling mass in (0, 1]; 1 keeps every token.
        prompt_length: ``None``: a sample's prompt is its tokens before its first loss-carrying token;
            an integer ``n``: its first ``n`` tokens (for plain text, which has no prompt mask).
    """

    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    prompt_length: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or int(self.max_new_tokens) != self.max_new_tokens or self.max_new_tokens < 1:
            raise DistillError(f"generation.max_new_tokens must be a whole number >= 1, got {self.max_new_tokens}")
        if not math.isfinite(float(self.temperature)) or float(self.temperature) <= 0:
            raise DistillError(f"generation.temperature must be a finite number > 0, got {self.temperature} (greedy: do_sample=false)")
        if not 0 < float(self.top_p) <= 1:
            raise DistillError(f"generation.top_p must be in (0, 1], got {self.top_p}")
        if self.prompt_length is not None and (int(self.prompt_length) != self.prompt_length or self.prompt_length < 1):
            raise DistillError(f"generation.prompt_length must be a whole number >= 1 or null, got {self.prompt_length}")

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``model.generate`` (sampling settings only when sampling)."""
        kwargs: dict[str, Any] = {"max_new_tokens": int(self.max_new_tokens), "do_sample": bool(self.do_sample)}
        if self.do_sample:
            kwargs.update(temperature=float(self.temperature), top_p=float(self.top_p), top_k=0)
        return kwargs

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def as_settings(generation: GenerationSettings | dict | None) -> GenerationSettings:
    if generation is None:
        return GenerationSettings()
    if isinstance(generation, GenerationSettings):
        return generation
    return GenerationSettings(**dict(generation))


def prompt_ends(labels: Tensor, attention_mask: Tensor | None = None, prompt_length: int | None = None) -> Tensor:
    """Where each row's prompt ends (exclusive), ``[B]``: its first loss-carrying position, or after ``prompt_length`` real tokens.

    Args:
        labels: ``[B, T]`` token ids, -100 where no loss is taken.
        attention_mask: ``[B, T]`` (1: a real token, 0: padding on either side); ``None``: all real.
        prompt_length: when given, the prompt is each row's first ``prompt_length`` real tokens (all of them when fewer).

    A row without any loss-carrying token is all prompt. Position 0 never carries loss
    (no token predicts it), so a prompt has at least one token.
    """
    batch, length = labels.shape
    real = attention_mask.bool() if attention_mask is not None else torch.ones_like(labels, dtype=torch.bool)
    if prompt_length is not None:
        start = real.long().argmax(1)  # the first real token (left padding comes before it)
        return torch.minimum(start + int(prompt_length), start + real.long().sum(1))
    carries = (labels != IGNORE_INDEX) & real
    carries[:, 0] = False
    return torch.where(carries.any(1), carries.long().argmax(1), torch.full((batch,), length, device=labels.device))


def prompts_of(input_ids: Tensor, attention_mask: Tensor | None, labels: Tensor, prompt_length: int | None = None) -> list[list[int]]:
    """Each row's prompt tokens (before :func:`prompt_ends`, padding left out), as lists of ids."""
    ends = prompt_ends(labels, attention_mask, prompt_length).tolist()
    ids = input_ids.tolist()
    real = attention_mask.bool().tolist() if attention_mask is not None else [[True] * input_ids.shape[1]] * len(ids)
    return [[t for t, keep in zip(ids[row][:end], real[row][:end]) if keep] for row, end in enumerate(ends)]


@contextmanager
def generating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode under ``torch.no_grad()``; every submodule's train/eval mode is restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for module, mode in modes:
            module.training = mode


def generation_model(model: nn.Module) -> tuple[nn.Module, list[int]]:
    """The model whose ``generate`` is called, and the token ids it must not produce (rows a VocabularySlice cuts)."""
    suppressed: list[int] = []
    if isinstance(model, VocabularySlice):
        suppressed = list(range(model.size, output_rows(model.model)))
        model = model.model
    if not callable(getattr(model, "generate", None)):
        raise DistillError(
            f"a {type(model).__name__} cannot generate; on-policy and sequence-level distillation need a "
            "Hugging Face causal LM (teacher/student=hf_causal_lm)"
        )
    return model, suppressed


def generate_completions(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    settings: GenerationSettings,
    *,
    eos_token_id: int | None,
    pad_token_id: int,
    seed: int,
    device: torch.device | str | None = None,
    max_new_tokens: int | None = None,
) -> list[list[int]]:
    """``model``'s completion of each prompt (one batched ``generate``), each cut after its first EOS.

    Args:
        model: a Hugging Face causal LM (or a :class:`~distill.lm.vocabulary.VocabularySlice` of one).
        prompts: token ids, each at least one token.
        settings: see :class:`GenerationSettings`.
        eos_token_id: the end-of-text token (kept as a completion's last token), or ``None``.
        pad_token_id: what the left padding of the prompts is filled with.
        seed: the seed of the sampling (drawn from a forked RNG: the caller's random streams do not move).
        device: where to generate; default: the device of the model's first parameter.
        max_new_tokens: overrides ``settings.max_new_tokens`` (the room left in a row).
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise DistillError("every prompt needs at least one token to generate a completion from")
    generator, suppressed = generation_model(model)
    if device is None:
        device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), int(pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.as_tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt):] = 1
    kwargs = settings.generate_kwargs()
    if max_new_tokens is not None:
        kwargs["max_new_tokens"] = int(max_new_tokens)
    if suppressed:
        kwargs["suppress_tokens"] = suppressed
    device = torch.device(device)
    with generating(model), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        out = generator.generate(input_ids=ids.to(device), attention_mask=mask.to(device), pad_token_id=int(pad_token_id),
                                 eos_token_id=eos_token_id, **kwargs)
    return [_cut_at_eos(row, eos_token_id) for row in out[:, width:].tolist()]


def completion_rows(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], length: int,
                    pad_token_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(input_ids, attention_mask, labels)``, each ``[n, length]``: prompt + completion, right-padded.

    Labels are -100 on the prompt and the padding and the completion's tokens on the
    completion, so the loss is taken on the completion alone. A completion longer than
    the room left (``length - len(prompt)``) is cut.
    """
    n = len(prompts)
    ids = torch.full((n, length), int(pad_token_id), dtype=torch.long)
    mask = torch.zeros((n, length), dtype=torch.long)
    labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        completion = list(completion)[: max(length - len(prompt), 0)]
        tokens = (list(prompt) + completion)[:length]
        ids[row, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
        if completion:
            labels[row, len(prompt): len(tokens)] = torch.as_tensor(completion, dtype=torch.long)
    return ids, mask, labels


def _cut_at_eos(tokens: list[int], eos_token_id: int | None) -> list[int]:
    if eos_token_id is not None and eos_token_id in tokens:
        return tokens[: tokens.index(eos_token_id) + 1]
    return tokens
