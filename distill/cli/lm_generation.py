"""Generation in the loop of the LM job: ``sequence_kd`` (Kim & Rush 2016) and ``on_policy`` (GKD) from the config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from distill.lm.mask_audit import mask_audit
from distill.lm.on_policy import OnPolicy

log = logging.getLogger("distill")


def apply_sequence_kd(cfg: DictConfig, datamodule: Any, teacher: nn.Module) -> list | None:
    """With a ``sequence_kd`` node: the training split becomes the teacher's completions; returns the examples it had."""
    if not cfg.get("sequence_kd"):
        return None
    sequence_kd = instantiate(cfg.sequence_kd)
    original = sequence_kd.apply(datamodule, teacher, Path(cfg.cache_dir).expanduser())
    first = datamodule.datasets["train"].examples[0]
    log.info("Loss-mask audit of the first sequence-KD example (the teacher's completion):\n%s",
             mask_audit(*first, datamodule.tokenizer))
    return original


def on_policy_from_config(cfg: DictConfig, datamodule: Any) -> OnPolicy | None:
    """The ``on_policy`` node, with the tokenizer's end-of-text and padding tokens; ``None`` without one."""
    if not cfg.get("on_policy"):
        return None
    tokenizer = datamodule.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return instantiate(cfg.on_policy, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)
