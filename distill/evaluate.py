"""Measure a saved student: ``python -m distill.evaluate checkpoint=outputs/<date>/<time>/checkpoints/best.ckpt``.

Prints the report's numbers for the model in the checkpoint (top-1, top-5 with
at least 10 classes, ECE, NLL, agreement with the teacher, parameters, size,
CPU latency at batch 1 and 64) and writes ``evaluation.json`` and
``evaluation.md`` (and, with ``per_sample=true``, ``per_sample.csv``) into
``out_dir``. The model, the data and the teacher are read from the run's
``.hydra/config.yaml`` next to the checkpoint; the teacher is obtained as the
run obtained it (its checkpoint, its pretrained weights, or the teacher distill
trained and cached: never retrained unless ``train_teacher=true``). See
``conf/evaluate.yaml`` for every setting.

The measuring itself is :func:`distill.report.evaluate`, the run report's own pipeline;
rebuilding the run is :mod:`distill.cli.saved_run`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from distill.cli.lm_saved_run import evaluate_language_model, is_saved_language_model
from distill.cli import console
from distill.cli.config_directory import config_dir
from distill.cli.error_policy import command_entry, guarded
from distill.cli.overrides import check_checkpoint_command, command_line_keys
from distill.cli.saved_run import load_saved_model, load_teacher
from distill.cli.training import loss_terms
from distill.errors import DistillError
from distill.report.evaluation_report import evaluate
from distill.report.table import print_report

__all__ = ["cli", "evaluate_saved", "main"]


def evaluate_saved(cfg: DictConfig, overrides: Sequence[str], out_dir: str | os.PathLike) -> dict[str, Any]:
    """The whole job on a composed ``conf/evaluate.yaml``: rebuild student, teacher and data, measure, write.

    ``overrides`` is the command line (``key=value`` strings); it says which of the
    run's settings ``cfg`` replaces. The files go to ``out_dir``.
    """
    out_dir = Path(out_dir)
    keys = command_line_keys(overrides)
    device = str(cfg.get("device") or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DistillError(f"device={device} but no CUDA GPU is available here; use device=cpu")
    saved = load_saved_model(cfg, keys)
    meta: dict[str, Any] = {
        "checkpoint": str(saved.checkpoint.resolve()),
        "run_dir": str(saved.run_dir) if saved.run_dir is not None else None,
        "model": saved.name,
    }
    loss = None
    if saved.role == "teacher":
        if cfg.get("per_sample"):
            raise DistillError("per_sample=true compares a student with its teacher; it is not available with role=teacher")
        teacher, names = None, {"teacher": saved.name}
    else:
        teacher_name, prepared = load_teacher(cfg, saved, keys, out_dir)
        teacher, names = prepared.model, {"student": saved.name, "teacher": teacher_name}
        meta["teacher_source"] = prepared.source
        if saved.run_cfg is not None:
            loss = loss_terms(saved.run_cfg.loss)
            meta["loss"] = {name: repr(term) for name, term in loss.items()}
    return evaluate(
        saved.model, teacher, saved.datamodule, loss=loss, per_sample=bool(cfg.get("per_sample")), out_dir=out_dir,
        role=saved.role, names=names, device=device, latency=cfg.report.latency, meta=meta,
    )


def _job(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(cfg.out_dir).expanduser() if cfg.out_dir else Path(hydra_cfg.runtime.output_dir)
    if is_saved_language_model(cfg.checkpoint):  # an LM run's student_model/: the LM report
        evaluate_language_model(cfg, list(hydra_cfg.overrides.task), out_dir)
        return
    result = evaluate_saved(cfg, hydra_cfg.overrides.task, out_dir)
    print_report(result)
    for name, value in result.get("losses", {}).items():
        print(f"loss/{name} (test-set mean, unweighted): {value:.6g}")
    print(f"evaluation written to {', '.join(result['files'].values())}", flush=True)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    console.quiet_libraries(console.is_verbose(cfg, HydraConfig.get().verbose))
    guarded(lambda: _job(cfg))


def cli() -> None:
    """``python -m distill.evaluate``."""
    command_entry(lambda argv: check_checkpoint_command(argv, "distill.evaluate"), main)


if __name__ == "__main__":
    cli()
