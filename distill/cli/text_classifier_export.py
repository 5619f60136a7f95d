"""``python -m distill.export format=huggingface`` on a Hugging Face text classifier's run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from distill.errors import DistillError
from distill.models.exporter import FORMATS
from distill.models.pretrained_export import PRETRAINED_FORMAT, export_pretrained
from distill.report.measurement import evaluation_loader, example_input


def export_saved_text_classifier(cfg: DictConfig, saved: Any, default_out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The student as a ``save_pretrained`` directory with the data's tokenizer, checked by loading it back with
    ``AutoModelForSequenceClassification``; ``saved`` is :func:`distill.cli.saved_run.load_saved_model`'s and the
    directory ``cfg.out``, else ``default_out``."""
    if not callable(getattr(saved.model, "save_pretrained", None)):
        raise DistillError(
            f"format={PRETRAINED_FORMAT} writes a Hugging Face model's save_pretrained directory, but {saved.checkpoint} "
            f"holds a {type(saved.model).__name__} ({saved.name}); choose one of {', '.join(FORMATS)}"
        )
    example = example_input(evaluation_loader(saved.datamodule))
    if not isinstance(example, dict):
        raise DistillError(f"format={PRETRAINED_FORMAT} is checked on token batches; this data's batches hold other inputs")
    out = Path(str(cfg.out)).expanduser() if cfg.get("out") else default_out
    return export_pretrained(saved.model, getattr(saved.datamodule, "tokenizer", None), out, example,
                             auto_class="AutoModelForSequenceClassification", tolerance=cfg.get("tolerance"), meta=meta)
