"""Export a saved student: ``python -m distill.export checkpoint=PATH format=torch_export|torchscript|onnx|state_dict|huggingface [out=FILE]``.

Writes the student alone (no teacher, no adapters; by default a ``torch.export``
program, ``.pt2``, into the run's ``exports/``), loads the file back and
checks on a batch of test data that it computes what the PyTorch student
computes: the largest absolute difference of the outputs is printed, recorded
in ``<out>.json`` and must stay within the tolerance (1e-5 for torch.export,
TorchScript and state_dict, 1e-4 for ONNX; ``tolerance=`` to change it), else
the job fails and writes nothing. The record also describes the input (the
data's preprocessing with its numbers, the class names) and the teacher. The model and the input size are read from the run's
``.hydra/config.yaml`` next to the checkpoint (``model=``, ``image_size=``,
``channels=``, ``num_classes=`` override them). ONNX needs
``pip install 'distill[export]'``. A language-model run's student is written as a
``save_pretrained`` directory with its tokenizer (``format=huggingface``, the default
for such runs), loaded back with ``AutoModelForCausalLM.from_pretrained`` and
checked the same way. See ``conf/export.yaml`` for every setting.

The exporting itself is :func:`distill.models.exporter.export_model`; rebuilding the run is
:mod:`distill.cli.saved_run`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from distill.cli import console
from distill.cli.config_directory import config_dir
from distill.cli.error_policy import command_entry, guarded
from distill.cli.overrides import check_checkpoint_command, command_line_keys
from distill.cli.saved_run import load_saved_model
from distill.errors import DistillError
from distill.cli.language_model import is_language_model_data
from distill.cli.lm_saved_run import export_saved_language_model
from distill.cli.text_classifier_export import export_saved_text_classifier
from distill.models.exporter import FORMATS, check_format, default_filename, export_model
from distill.models.pretrained_export import PRETRAINED_FORMAT
from distill.report.measurement import evaluation_loader, example_input
from distill.report.run_summary import summary_teacher

__all__ = ["cli", "export_saved", "main"]


def export_saved(cfg: DictConfig, overrides: Sequence[str], out_dir: str | os.PathLike) -> dict[str, Any]:
    """The whole job on a composed ``conf/export.yaml``: rebuild the model, export it, check it.

    ``overrides`` is the command line (it says which of the run's data settings
    ``cfg`` replaces); without ``out=`` the file goes into the run's ``exports/`` (named after the
    checkpoint and the model, e.g. ``exports/best-resnet18.pt2``), or into ``out_dir`` for a
    checkpoint outside a run directory.
    """
    requested = None if cfg.get("format") is None else str(cfg.format)
    if requested is not None and requested != PRETRAINED_FORMAT:
        if requested not in FORMATS:
            raise DistillError(f"unknown export format '{requested}'; choose one of {', '.join((*FORMATS, PRETRAINED_FORMAT))}")
        check_format(requested)  # a missing onnx fails before anything is loaded
    saved = load_saved_model(cfg, command_line_keys(overrides))
    meta = {
        "checkpoint": str(saved.checkpoint.resolve()),
        "run_dir": str(saved.run_dir) if saved.run_dir is not None else None,
        "model": saved.name,
        "role": saved.role,
        "num_classes": saved.num_classes,
        "teacher": _teacher_fields(summary_teacher(saved.run_dir)),
    }
    describe = getattr(saved.datamodule, "input_description", None)
    meta["input"] = describe() if callable(describe) else None  # what a fresh process feeds the model
    # without out=, the export goes into the run's directory (exports/), beside the checkpoint it came from
    out_dir = Path(saved.run_dir) / "exports" if saved.run_dir is not None else Path(out_dir)
    if is_language_model_data(saved.datamodule):
        return export_saved_language_model(cfg, saved, requested, out_dir / f"{_stem(saved)}-{PRETRAINED_FORMAT}", meta)
    if requested == PRETRAINED_FORMAT:  # a Hugging Face text classifier
        return export_saved_text_classifier(cfg, saved, out_dir / f"{_stem(saved)}-{PRETRAINED_FORMAT}", meta)
    fmt = requested or "torch_export"
    example = example_input(evaluation_loader(saved.datamodule))
    if example is None:
        raise DistillError("export needs tensor inputs (or keyword tensors); this data's batches hold other inputs")
    out = Path(str(cfg.out)).expanduser() if cfg.get("out") else out_dir / default_filename(_stem(saved), fmt)
    return export_model(
        saved.model, fmt, out, example, tolerance=cfg.get("tolerance"), name=saved.name,
        num_classes=saved.num_classes, options=saved.options, meta=meta,
    )


def _stem(saved: Any) -> str:
    """The default file name's stem: the model, after the checkpoint's name inside a run (best-resnet18, last-resnet18)."""
    return f"{saved.checkpoint.stem}-{saved.name}" if saved.run_dir is not None else str(saved.name)


def _teacher_fields(teacher: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the export record says of the teacher the run distilled from (its summary's name, sha256, source)."""
    return {key: teacher.get(key) for key in ("name", "sha256", "source")} if teacher is not None else None


def _job(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    result = export_saved(cfg, hydra_cfg.overrides.task, hydra_cfg.runtime.output_dir)
    meta = result["meta"]
    print(
        f"exported {meta['model']} ({meta['role']}) as {result['format']} to {result['path']}\n"
        f"checked on test batches of {' and '.join(str(b) for b in result['batch_sizes'])} inputs of shape "
        f"{_shape_text(result['input_shape'])}: max |exported - PyTorch| = {result['max_abs_diff']:.3g} "
        f"<= tolerance {result['tolerance']:g}\n"
        f"record: {result['record']}",
        flush=True,
    )


def _shape_text(shape: list[int] | dict[str, list[int]]) -> str:
    """A sample's input shape (without the batch dimension); keyword inputs by name."""
    if isinstance(shape, dict):
        return ", ".join(f"{key} {value[1:]}" for key, value in shape.items())
    return str(shape[1:])


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="export")
def main(cfg: DictConfig) -> None:
    console.quiet_libraries(console.is_verbose(cfg, HydraConfig.get().verbose))
    guarded(lambda: _job(cfg))


def cli() -> None:
    """``python -m distill.export``."""
    command_entry(lambda argv: check_checkpoint_command(argv, "distill.export"), main)


if __name__ == "__main__":
    cli()
