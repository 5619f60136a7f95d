"""An LM student as a ``save_pretrained`` directory with its tokenizer: ``AutoModelForCausalLM.from_pretrained(DIR)``.

A LoRA student is written with its adapters merged into the weights; a student that predicts a slice of a padded
vocabulary (:class:`~distill.lm.vocabulary.VocabularySlice`) is written as the model it wraps.
:func:`export_language_model` (``python -m distill.export`` on an LM run) also loads the directory back and
checks that it computes the same logits, as the classifier exports do
(:mod:`distill.models.pretrained_export`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from distill.lm.vocabulary import VocabularySlice
from distill.models.pretrained_export import TOLERANCE, export_pretrained, save_pretrained_model

__all__ = ["TOLERANCE", "export_language_model", "save_language_model"]


def save_language_model(model: nn.Module, tokenizer: Any, directory: str | Path) -> Path:
    """Write ``model`` and ``tokenizer`` to ``directory`` (:func:`~distill.models.pretrained_export.save_pretrained_model`)."""
    return save_pretrained_model(model.model if isinstance(model, VocabularySlice) else model, tokenizer, directory)


def export_language_model(model: nn.Module, tokenizer: Any, directory: str | Path, example: Mapping[str, Tensor], *,
                          tolerance: float | None = None, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the LM and its tokenizer as a ``save_pretrained`` directory, loaded back with ``AutoModelForCausalLM``
    and checked to compute the same logits (:func:`~distill.models.pretrained_export.export_pretrained`)."""
    inner = model.model if isinstance(model, VocabularySlice) else model
    return export_pretrained(inner, tokenizer, directory, example, auto_class="AutoModelForCausalLM",
                             tolerance=tolerance, meta=meta)
