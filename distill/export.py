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
:mod:`distill.cli.saved_run`, the format, the record and the file :mod:`distill.cli.saved_export`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from distill.cli import console
from distill.cli.config_directory import config_dir
from distill.cli.error_policy import command_entry, guarded
from distill.cli.language_model import is_language_model_data
from distill.cli.lm_saved_run import export_saved_language_model
from distill.cli.overrides import check_checkpoint_command, command_line_keys
from distill.cli.saved_export import (
    export_directory,
    export_record,
    export_saved_classifier,
    export_saved_text_classifier,
    exported_text,
    pretrained_directory,
    requested_format,
)
from distill.cli.saved_run import load_saved_model
from distill.models.pretrained_export import PRETRAINED_FORMAT

__all__ = ["cli", "export_saved", "main"]


def export_saved(cfg: DictConfig, overrides: Sequence[str], out_dir: str | os.PathLike) -> dict[str, Any]:
    """The whole job on a composed ``conf/export.yaml``: rebuild the model, export it, check it.

    ``overrides`` is the command line (it says which of the run's data settings
    ``cfg`` replaces); without ``out=`` the file goes into the run's ``exports/`` (named after the
    checkpoint and the model, e.g. ``exports/best-resnet18.pt2``), or into ``out_dir`` for a
    checkpoint outside a run directory.
    """
    requested = requested_format(cfg)  # a bad format= fails before anything is loaded
    saved = load_saved_model(cfg, command_line_keys(overrides))
    meta = export_record(saved)
    out_dir = export_directory(saved, out_dir)
    if is_language_model_data(saved.datamodule):
        return export_saved_language_model(cfg, saved, requested, pretrained_directory(saved, out_dir), meta)
    if requested == PRETRAINED_FORMAT:  # a Hugging Face text classifier
        return export_saved_text_classifier(cfg, saved, pretrained_directory(saved, out_dir), meta)
    return export_saved_classifier(cfg, saved, requested or "torch_export", out_dir, meta)


def _job(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    print(exported_text(export_saved(cfg, hydra_cfg.overrides.task, hydra_cfg.runtime.output_dir)), flush=True)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="export")
def main(cfg: DictConfig) -> None:
    console.quiet_libraries(console.is_verbose(cfg, HydraConfig.get().verbose))
    guarded(lambda: _job(cfg))


def cli() -> None:
    """``python -m distill.export``."""
    command_entry(lambda argv: check_checkpoint_command(argv, "distill.export"), main)


if __name__ == "__main__":
    cli()
