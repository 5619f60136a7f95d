"""The main job: ``python -m distill.run teacher=resnet50 student=resnet18 loss=kd data=digits``.

Composes the config with Hydra, gets the teacher (checkpoint, pretrained
weights, or trained first and cached), distils it into the student with
Lightning's Trainer, loads the best student, measures every model once on the
test split and writes the report and the summary into the run directory.

This module is the run's orchestration only; what the commands share (the
error policy, teachers from the config, the Trainer) is in :mod:`distill.cli`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from distill.checkpoint_io import AtomicCheckpointIO
from distill.cli import console
from distill.cli.config_directory import config_dir
from distill.cli.error_policy import command_entry, guarded
from distill.cli.hydra_preflight import check_composition, check_grammar
from distill.cli.config_checks import check_batch_size, check_buildable, check_config
from distill.cli.language_model import is_language_model_data, run_language_model
from distill.cli.key_check import check_loss_order, check_override_keys
from distill.cli.overrides import check_group_overrides
from distill.cli.best_student import best_checkpoint, best_score, load_best_student
from distill.cli.resume_checks import check_resumed_teacher, resume_checkpoint
from distill.cli.run_dir_check import check_run_dirs
from distill.cli.teachers import (
    baseline_from_config,
    check_feature_layers_first,
    check_sample_indices_first,
    check_teacher_names,
    display_name,
    model_spec,
    teacher_from_config,
    teacher_outputs_from_config,
)
from distill.cli.training import check_labels_for, finish_loggers, loss_terms, make_callbacks, make_logger, make_trainer
from distill.data.contract import IndexableData
from distill.errors import DistillError
from distill.io import atomic_torch_save
from distill.models import check_model_name, weights_sha256
from distill.models.casting import on_float32_inputs
from distill.module import DistillationModule
from distill.report.run_report import distillation_report
from distill.report.run_summary import run_summary, write_summary
from distill.report.speed import latency_mode
from distill.report.table import print_report

__all__ = ["cli", "config_dir", "main", "run"]

log = logging.getLogger("distill")


#: augment= on a language model's data, which the LM run would otherwise ignore without a word
LM_AUGMENT = (
    "augment= mixes or shifts float inputs (images, signals, features); a language model's token ids cannot be "
    "augmented that way: set augment=null"
)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run one distillation job described by ``cfg``; return its summary."""
    started = time.perf_counter()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    console.PHASES.begin(3 + bool(cfg.get("baseline")), run_dir)
    check_config(cfg)  # every value by type and range, before anything is built
    L.seed_everything(cfg.seed, workers=True)
    # everything that can be wrong in the config fails here, before any training
    datamodule = instantiate(cfg.data)
    if is_language_model_data(datamodule):  # causal LMs: their own steps and report
        if cfg.get("augment"):
            raise DistillError(LM_AUGMENT)
        return run_language_model(cfg, datamodule, run_dir, started)
    loss = loss_terms(cfg.loss)
    check_labels_for(loss, cfg)
    check_teacher_names(cfg.teacher)
    check_model_name(cfg.student.name)
    with torch.random.fork_rng(devices=[]):  # built now from the seed; the teacher's random draws stay as they were
        torch.manual_seed(cfg.seed)
        student = model_spec(cfg.student).build(datamodule.num_classes)
    check_buildable(cfg, student)  # optimizers, schedules, callbacks: built once now, not after the teacher trained
    check_batch_size(cfg, datamodule)
    check_feature_layers_first(cfg, datamodule, student, loss)  # layer names and shapes, before the teacher trains
    check_sample_indices_first(cfg, datamodule, loss)  # the teacher-output cache's refusals, before the teacher trains
    resume_path = resume_checkpoint(cfg, run_dir, student)
    resume_from = str(resume_path) if resume_path is not None else None
    # the run's one Trainer, built before the teacher: settings Lightning rejects fail here
    trainer = make_trainer(
        cfg, callbacks=make_callbacks(cfg), logger=make_logger(cfg, resume_from is not None), plugins=[AtomicCheckpointIO()]
    )
    # a data module without with_index (not IndexableData) yields (x, y, index) itself, as CRD's docs say
    reads_index = any(term.needs_index for term in loss.values())
    if reads_index and isinstance(datamodule, IndexableData) and not datamodule.with_index:
        log.info("A loss term reads sample indices: the data module adds them to each batch")
        datamodule.with_index = True

    teacher = teacher_from_config(cfg, datamodule, run_dir)
    names = {"teacher": display_name(cfg.teacher), "student": display_name(cfg.student)}  # a HF model: its directory
    console.PHASES.enter_once("teacher", f"teacher {names['teacher']}: {teacher.source}")
    teacher_outputs = teacher_outputs_from_config(cfg, datamodule, teacher.model, loss) if cfg.teacher.get("cache") else None
    # seed again so the student starts the same whether the teacher was trained now or loaded
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("channels_last"):
        for model in (student, teacher.model):
            model.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        student.compile()  # in place: parameter names, hooks and checkpoints stay as they are
    module = DistillationModule(
        student,
        teacher.model,
        loss,
        optimizer=instantiate(cfg.optimizer),
        lr_scheduler=instantiate(cfg.lr_scheduler) if cfg.get("lr_scheduler") else None,
        teacher_source=teacher.source,
        log_grad_norms=bool(cfg.get("log_grad_norms", False)),
        teacher_outputs=teacher_outputs,
        teacher_dtype=cfg.teacher.get("dtype"),
        batch_augment=instantiate(cfg.augment).for_classes(datamodule.num_classes) if cfg.get("augment") else None,
    )
    check_resumed_teacher(resume_from, module)
    terms = console.loss_terms_text(loss)
    console.PHASES.enter("distill", f"distilling {names['teacher']} into {names['student']} ({console.epochs(cfg.trainer.max_epochs)}, loss {terms})")
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if not trainer.is_global_zero:
        return {}  # under DDP, rank 0 writes the weights, the report and the summary

    best = best_checkpoint(trainer)
    load_best_student(module, best)
    weights_path = atomic_torch_save(module.student.state_dict(), run_dir / "student.pt")
    models = {"teacher": (names["teacher"], module.teacher_as_run), "student": (names["student"], module.student)}
    if cfg.get("baseline"):
        L.seed_everything(cfg.seed, workers=True)
        baseline = baseline_from_config(cfg, datamodule, run_dir)
        console.PHASES.enter_once("baseline", f"baseline {names['student']}: {baseline.source}")
        models["baseline"] = (names["student"], baseline.model)
    models = {role: (name, on_float32_inputs(model)) for role, (name, model) in models.items()}
    log_dir = getattr(trainer.logger, "log_dir", None)  # None for loggers that keep no local folder
    loss_text = {name: repr(term) for name, term in module.loss_terms.items()}
    # hashed when the module was built and again now: equal, or on_fit_end would have failed (unless the precision
    # cast the teacher, bf16-true: then "after" equals the hash as it ran, which on_fit_end checked)
    hashes = {"teacher_sha256_before": module.teacher_sha256, "teacher_sha256_after": weights_sha256(teacher.model)}
    datamodule.setup("test")
    latency = latency_mode(cfg.get("report", {}).get("latency", "full"))
    measured = "accuracy, calibration" + (", CPU latency" if latency != "off" else "")
    console.PHASES.enter("measure", f"measuring the {', the '.join(models)} on the test set ({measured})")
    with console.measuring_bar(cfg.trainer.get("enable_progress_bar", True)) as progress:
        report = distillation_report(
            models, datamodule.test_dataloader(), run_dir, Path(log_dir) / "metrics.csv" if log_dir else None,
            meta={"data": cfg.data._target_.rsplit(".", 1)[-1], "loss": loss_text, "run_dir": str(run_dir), **hashes},
            latency=latency, progress=progress,
        )
    _log_test_metrics(trainer, report)
    summary = run_summary(
        report,
        {
            "name": names["teacher"], "source": teacher.source, "origin": teacher.origin,
            "sha256": hashes["teacher_sha256_before"], "sha256_after": hashes["teacher_sha256_after"],
            **module.teacher_cast_hash(),
        },
        {
            "name": names["student"], "checkpoint": best or None, "best_val_accuracy": best_score(trainer),
            "weights": str(weights_path),
        },
        loss=loss_text,
        seconds=time.perf_counter() - started,
        run_dir=str(run_dir),
        logs=log_dir,
        report={"json": str(run_dir / "report.json"), "markdown": str(run_dir / "report.md"), **report["figures"]},
    )
    write_summary(summary, run_dir)
    finish_loggers(trainer)  # before the report: its closing lines must not follow the pointers
    print_report(report)
    console.say(console.pointers(summary))
    return summary


def _log_test_metrics(trainer: L.Trainer, report: dict[str, Any]) -> None:
    """The report's test numbers, logged next to the training curves (test/acc, test/agreement, test/teacher_acc)."""
    if trainer.logger is None:
        return
    rows = {row["role"]: row for row in report["rows"]}
    values = {
        "test/acc": rows["student"]["accuracy"],
        "test/agreement": rows["student"]["agreement"],
        "test/teacher_acc": rows["teacher"]["accuracy"],
    }
    trainer.logger.log_metrics({k: v for k, v in values.items() if v is not None}, step=trainer.global_step)
    trainer.logger.save()


def _optimized_metric(summary: dict[str, Any], path: str | None) -> float | None:
    """The value a hyper-parameter sweeper maximises: the summary entry at dotted ``path``."""
    if not path or not summary:  # no sweeper, or a DDP rank other than 0
        return None
    value: Any = summary
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DistillError(f"optimized_metric={path}: the run summary has no entry '{part}'")
        value = value[part]
    return float(value)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    console.quiet_libraries(console.is_verbose(cfg, HydraConfig.get().verbose))
    failed = float("nan") if cfg.get("optimized_metric") else None  # a failed trial for a sweeper
    return guarded(lambda: _optimized_metric(run(cfg), cfg.get("optimized_metric")), failed_in_sweep=failed)


def _check_argv(argv: list[str]) -> list[str]:
    check_grammar(argv)  # what Hydra's override grammar cannot read, before anything splits the overrides
    argv = check_group_overrides(argv, config_dir())
    check_loss_order(argv, config_dir())
    check_override_keys(argv, config_dir())
    check_composition(argv, config_dir(), "config")  # whatever else Hydra would refuse, as one line
    check_run_dirs(argv)  # last: it creates the run directory
    return argv


def cli() -> None:
    """Console entry point (``distill-run``) and ``python -m distill.run``."""
    command_entry(_check_argv, main)


if __name__ == "__main__":
    cli()
