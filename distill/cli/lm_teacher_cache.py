"""``teacher.cache=true`` for language models: the teacher's top-k distributions, cached as the first epoch runs.

The cache holds, per loss-carrying training token, the ``k`` and the
temperature of the run's token divergence terms (they must all have the same
``top_k`` and temperature); it lives in ``teacher.cache_dir``, by default
``<cache_dir>/lm_teacher_outputs/<teacher hash>-<data hash>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader

from distill.errors import DistillError
from distill.lm.tokens import IGNORE_INDEX
from distill.lm.vocabulary import VocabularySlice, output_rows
from distill.losses.base import LossTerm
from distill.losses.token_loss_term import TokenDivergenceTerm
from distill.data.lm_examples import examples_sha256
from distill.teachers.lm_manifest import lm_cache_manifest
from distill.teachers.lm_output_cache import TopKTeacherCache

#: the storage dtype of the cached log-probabilities (2 bytes each; error <= 2**-11 of each value)
LOG_PROB_DTYPE = "float16"


def cached_loss_settings(loss: dict[str, LossTerm]) -> tuple[int, float]:
    """``(top_k, temperature)`` shared by the terms that read the teacher; a one-line error when the cache cannot serve them."""
    settings = {}
    for name, term in loss.items():
        if not term.needs_teacher:
            continue
        if term.teacher_layers or not isinstance(term, TokenDivergenceTerm):
            raise DistillError(
                f"teacher.cache=true stores only the teacher's top-k next-token distributions, but loss term '{name}' "
                f"({type(term).__name__}) reads more of the teacher; remove it (~loss.{name}) or set teacher.cache=false"
            )
        if term.top_k is None:
            raise DistillError(
                f"teacher.cache=true stores the teacher's top-k tokens, but loss.{name}.top_k=null asks for the dense "
                f"loss; give loss.{name}.top_k=K (e.g. 32), or set teacher.cache=false"
            )
        settings[name] = (term.top_k, term.temperature)
    if not settings:
        raise DistillError("teacher.cache=true: no loss term reads the teacher, so there is nothing to cache; set teacher.cache=false")
    if len(set(settings.values())) > 1:
        raise DistillError(
            f"teacher.cache=true holds one top_k and one temperature, but the terms differ "
            f"({', '.join(f'{n}: top_k={k}, temperature={t}' for n, (k, t) in settings.items())}); give them the same"
        )
    return next(iter(settings.values()))


def lm_teacher_cache_from_config(cfg: DictConfig, datamodule: Any, teacher: nn.Module,
                                 loss: dict[str, LossTerm]) -> TopKTeacherCache:
    """The run's top-k teacher cache, opened (complete) or laid out to be filled by the first epoch."""
    top_k, temperature = cached_loss_settings(loss)
    if not datamodule.labels:
        raise DistillError("teacher.cache=true caches the loss-carrying tokens, which the labels mark; data.labels=false has none")
    datamodule.with_index = True  # training batches are matched to cached examples by index
    train = datamodule.datasets["train"]
    counts = [sum(1 for label in labels[1:] if label != IGNORE_INDEX) for _, labels in train.examples]
    data_sha256 = examples_sha256(train.examples, datamodule.block_size, train.pad_id)
    vocabulary = teacher.size if isinstance(teacher, VocabularySlice) else output_rows(teacher)
    manifest = lm_cache_manifest(
        teacher, datamodule.tokenizer, data_sha256, counts, vocabulary=vocabulary, temperature=temperature,
        top_k=top_k, log_prob_dtype=LOG_PROB_DTYPE, teacher_dtype=cfg.teacher.get("dtype"),
    )
    directory = cfg.teacher.get("cache_dir") or (
        Path(cfg.cache_dir).expanduser() / "lm_teacher_outputs" / f"{manifest['teacher_sha256'][:16]}-{data_sha256[:12]}"
    )
    return TopKTeacherCache.open(directory, manifest, counts, teacher, cfg.teacher.get("dtype"))


def fill_ahead(cache: TopKTeacherCache, cfg: DictConfig, datamodule: Any, teacher: nn.Module) -> None:
    """Fill an incomplete cache before training (under DDP, where each process sees only its share of an epoch)."""
    if cache.complete:
        return
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.get("accelerator") in ("auto", "gpu", "cuda") else "cpu"
    datamodule.setup()  # the data sets yield indices from here on
    loader = DataLoader(datamodule.datasets["train"], batch_size=datamodule.batch_size, shuffle=False)
    try:
        teacher.to(device)
        cache.fill(loader, device)
    finally:
        teacher.to("cpu")
