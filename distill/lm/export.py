"""An LM student as a ``save_pretrained`` directory with its tokenizer: ``AutoModelForCausalLM.from_pretrained(DIR)``.

A LoRA student is written with its adapters merged into the weights: a plain model, loadable without peft.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from distill.errors import DistillError
from distill.lm.vocabulary import VocabularySlice
from distill.models.lora import merged_copy


def save_language_model(model: nn.Module, tokenizer: Any, directory: str | Path) -> Path:
    """Write ``model`` (weights as safetensors, ``config.json``, generation config) and ``tokenizer`` to ``directory``.

    LoRA adapters are merged into a copy of the weights first; ``model`` itself keeps them.
    """
    if isinstance(model, VocabularySlice):
        model = model.model
    model = merged_copy(model)
    if not callable(getattr(model, "save_pretrained", None)):
        raise DistillError(f"a {type(model).__name__} has no save_pretrained; only Hugging Face language models export this way")
    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the run's log
    model.save_pretrained(str(folder))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return folder
