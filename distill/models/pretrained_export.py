"""A Hugging Face model as a ``save_pretrained`` directory with its tokenizer, proved by loading it back.

``AutoModelForCausalLM.from_pretrained(DIR)`` (an LM student, :mod:`distill.lm.export`) or
``AutoModelForSequenceClassification.from_pretrained(DIR)`` (a text classifier, ``python -m distill.export
format=huggingface``) then gives the student in any process, without distill. A LoRA student is written with
its adapters merged into the weights: a plain model, loadable without peft.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from distill.errors import DistillError
from distill.io import atomic_write_text
from distill.models.lora import merged_copy

#: the export format of a ``save_pretrained`` directory (``python -m distill.export format=huggingface``)
PRETRAINED_FORMAT = "huggingface"


def save_pretrained_model(model: nn.Module, tokenizer: Any, directory: str | Path) -> Path:
    """Write ``model`` (weights as safetensors, ``config.json``, generation config) and ``tokenizer`` to ``directory``.

    LoRA adapters are merged into a copy of the weights first; ``model`` itself keeps them.
    """
    model = merged_copy(model)
    if not callable(getattr(model, "save_pretrained", None)):
        raise DistillError(f"a {type(model).__name__} has no save_pretrained; only Hugging Face models export this way")
    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the run's log
    model.save_pretrained(str(folder))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return folder


#: the largest max |exported - PyTorch| of the logits: the same weights and kernels agree to float32 rounding
#: (a LoRA student's merged weights differ from base + adapter by rounding only)
TOLERANCE = 1e-4


def export_pretrained(model: nn.Module, tokenizer: Any, directory: str | Path, example: Mapping[str, Tensor], *,
                      auto_class: str, tolerance: float | None = None, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``model`` and ``tokenizer`` as a ``save_pretrained`` directory and prove that it loads and computes the same.

    The directory is written beside ``directory`` under a temporary name, loaded back with
    ``transformers.<auto_class>.from_pretrained`` (``AutoModelForCausalLM``, ``AutoModelForSequenceClassification``;
    the tokenizer with ``AutoTokenizer``), run on the ``example`` batch (``input_ids``, ``attention_mask``) and on
    its first sequence, and compared with ``model``'s logits; only within ``tolerance`` (default :data:`TOLERANCE`)
    does it replace ``directory``, else nothing there changes. Also writes ``<directory>.json``, the record this returns.
    """
    import tempfile

    import transformers
    from transformers import AutoTokenizer

    tolerance = TOLERANCE if tolerance is None else float(tolerance)
    if not tolerance >= 0:
        raise DistillError(f"tolerance must be a number >= 0, got {tolerance}")
    inputs = {key: example[key].detach().cpu() for key in ("input_ids", "attention_mask", "token_type_ids") if key in example}
    if "input_ids" not in inputs:
        raise DistillError(f"a Hugging Face export is checked on token batches with input_ids; this batch holds {', '.join(example)}")
    target = Path(directory).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    inner = model
    was_training = inner.training
    inner.eval()
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        save_pretrained_model(inner, tokenizer, staging)
        loaded = getattr(transformers, auto_class).from_pretrained(str(staging), local_files_only=True).eval()
        batches = [inputs, {key: value[:1] for key, value in inputs.items()}]
        with torch.no_grad():
            pairs = [(_logits(inner, batch), _logits(loaded, batch)) for batch in batches]
        difference = max(float((expected - got).abs().max()) if expected.shape == got.shape else math.inf
                         for expected, got in pairs)
        if math.isnan(difference) or not difference <= tolerance:
            raise DistillError(
                f"the exported model does not compute what the PyTorch model computes: max |difference| of the logits "
                f"{difference:.3g} > tolerance {tolerance:g}; nothing was written to {target}"
            )
        if tokenizer is not None and AutoTokenizer.from_pretrained(str(staging), local_files_only=True).get_vocab() != tokenizer.get_vocab():
            raise DistillError(f"the exported tokenizer's vocabulary differs from the run's; nothing was written to {target}")
        _replace_directory(staging, target)
    finally:
        inner.train(was_training)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    result = {
        "format": "huggingface", "path": str(target), "max_abs_diff": difference, "tolerance": tolerance,
        "batch_sizes": [len(batch["input_ids"]) for batch in batches],
        "input_shape": {key: list(value.shape) for key, value in inputs.items()},
        "output_shape": list(pairs[0][0].shape), "meta": dict(meta or {}),
    }
    record = atomic_write_text(target.with_name(target.name + ".json"), json.dumps(result, indent=2, default=str) + "\n")
    result["record"] = str(record)
    return result


def _logits(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    return model(**batch).logits.float()


def _replace_directory(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``; an older ``target`` is set aside first and removed only once the new one is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
