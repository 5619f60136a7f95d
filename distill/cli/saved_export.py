"""A saved run's student written to a file for ``distill.export``: the format asked for, the record beside the
file, where it goes, and the classifier exports (a tensor model; a Hugging Face text classifier).

An LM run's student is exported beside its evaluation (:func:`distill.cli.lm_saved_run.export_saved_language_model`),
with :func:`output_path` from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from distill.errors import DistillError
from distill.models.exporter import FORMATS, check_format, default_filename, export_model
from distill.models.pretrained_export import PRETRAINED_FORMAT, export_pretrained
from distill.report.measurement import evaluation_loader, example_input
from distill.report.run_summary import summary_teacher


def requested_format(cfg: DictConfig) -> str | None:
    """``format=`` checked before anything is loaded (an unknown name, a missing onnx); ``None``: the run's default."""
    requested = None if cfg.get("format") is None else str(cfg.format)
    if requested is not None and requested != PRETRAINED_FORMAT:
        if requested not in FORMATS:
            raise DistillError(f"unknown export format '{requested}'; choose one of {', '.join((*FORMATS, PRETRAINED_FORMAT))}")
        check_format(requested)
    return requested


def export_record(saved: Any) -> dict[str, Any]:
    """What the record beside the export says: the checkpoint and run, the model, the teacher it was distilled from
    (its summary's name, sha256, source) and the input a fresh process feeds it (the data's description)."""
    teacher = summary_teacher(saved.run_dir)
    describe = getattr(saved.datamodule, "input_description", None)  # distill's data modules have one
    return {
        "checkpoint": str(saved.checkpoint.resolve()),
        "run_dir": str(saved.run_dir) if saved.run_dir is not None else None,
        "model": saved.name,
        "role": saved.role,
        "num_classes": saved.num_classes,
        "teacher": {key: teacher.get(key) for key in ("name", "sha256", "source")} if teacher is not None else None,
        "input": describe() if callable(describe) else None,
    }


def export_directory(saved: Any, out_dir: str | os.PathLike) -> Path:
    """Where an export goes without ``out=``: the run's ``exports/``, beside its checkpoint; ``out_dir`` outside a run."""
    return Path(saved.run_dir) / "exports" if saved.run_dir is not None else Path(out_dir)


def file_stem(saved: Any) -> str:
    """The default file name's stem: the model, after the checkpoint's name inside a run (best-resnet18, last-resnet18)."""
    return f"{saved.checkpoint.stem}-{saved.name}" if saved.run_dir is not None else str(saved.name)


def pretrained_directory(saved: Any, out_dir: Path) -> Path:
    """The default ``save_pretrained`` directory of ``saved`` under ``out_dir``."""
    return out_dir / f"{file_stem(saved)}-{PRETRAINED_FORMAT}"


def output_path(cfg: DictConfig, default: Path) -> Path:
    """``out=`` when given, else ``default``."""
    return Path(str(cfg.out)).expanduser() if cfg.get("out") else default


def export_saved_classifier(cfg: DictConfig, saved: Any, fmt: str, out_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The student in ``fmt`` (:data:`~distill.models.exporter.FORMATS`), checked on a test batch of the run's data."""
    example = example_input(evaluation_loader(saved.datamodule))
    if example is None:
        raise DistillError("export needs tensor inputs (or keyword tensors); this data's batches hold other inputs")
    out = output_path(cfg, out_dir / default_filename(file_stem(saved), fmt))
    return export_model(
        saved.model, fmt, out, example, tolerance=cfg.get("tolerance"), name=saved.name,
        num_classes=saved.num_classes, options=saved.options, meta=meta,
    )


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
    return export_pretrained(saved.model, getattr(saved.datamodule, "tokenizer", None), output_path(cfg, default_out),
                             example, auto_class="AutoModelForSequenceClassification", tolerance=cfg.get("tolerance"),
                             meta=meta)


def exported_text(result: dict[str, Any]) -> str:
    """What ``distill.export`` prints of an export: the file, the check and its tolerance, the record."""
    meta = result["meta"]
    return (
        f"exported {meta['model']} ({meta['role']}) as {result['format']} to {result['path']}\n"
        f"checked on test batches of {' and '.join(str(b) for b in result['batch_sizes'])} inputs of shape "
        f"{_shape_text(result['input_shape'])}: max |exported - PyTorch| = {result['max_abs_diff']:.3g} "
        f"<= tolerance {result['tolerance']:g}\n"
        f"record: {result['record']}"
    )


def _shape_text(shape: list[int] | dict[str, list[int]]) -> str:
    """A sample's input shape (without the batch dimension); keyword inputs by name."""
    if isinstance(shape, dict):
        return ", ".join(f"{key} {value[1:]}" for key, value in shape.items())
    return str(shape[1:])
