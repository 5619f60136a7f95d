"""The main job for causal language models: ``python -m distill.run experiment=lm``.

``distill.run`` hands over here when the data module is a language-model one.
The steps mirror the classification job: the teacher (a saved model, or
trained first on next-token cross-entropy and cached), the student (a saved
model, or built from a config), a vocabulary check, distillation with
Lightning's Trainer, the optional ``baseline=true`` student trained alone, and
the LM fidelity report; the student is also written as a ``save_pretrained``
directory with its tokenizer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from distill.cli.lm_cross_tokenizer import check_cross_tokenizer_terms, run_across_tokenizers
from distill.cli.lm_models import STUDENT_BASE_SOURCE, announce_distilling, lm_model_name, model_options, prepare_lm_model
from distill.checkpoint_io import AtomicCheckpointIO
from distill.cli.best_student import best_checkpoint, best_score, load_best_student
from distill.cli.lm_generation import apply_sequence_kd, on_policy_from_config
from distill.cli.lm_teacher_cache import cached_loss_settings, fill_ahead, lm_teacher_cache_from_config
from distill.cli.resume_checks import check_resumed_teacher, resume_checkpoint
from distill.cli import console
from distill.cli.teachers import is_student_base
from distill.cli.training import finish_loggers, loss_terms, make_callbacks, make_logger, make_trainer
from distill.errors import DistillError
from distill.lm.mask_audit import mask_audit
from distill.lm.vocabulary import reconcile_vocabularies
from distill.lm.export import save_language_model
from distill.models import build_model, check_model_name
from distill.models.causal_lm import load_tokenizer
from distill.models.fingerprint import weights_sha256
from distill.module import DistillationModule
from distill.report.lm_report import language_model_report
from distill.report.run_summary import write_summary
from distill.teachers import PreparedTeacher

log = logging.getLogger("distill")


def is_language_model_data(datamodule: Any) -> bool:
    return bool(getattr(datamodule, "is_language_model", False))


def run_language_model(cfg: DictConfig, datamodule: Any, run_dir: Path, started: float) -> dict[str, Any]:
    """One LM distillation job; returns its summary (also written to ``summary.json``)."""
    vocab = datamodule.num_classes
    loss = loss_terms(cfg.loss)
    self_distilled = is_student_base(cfg.teacher)  # teacher=student_base: the LoRA student's own base model
    for model_cfg in (cfg.student,) if self_distilled else (cfg.teacher, cfg.student):
        check_model_name(model_cfg.name)
    if self_distilled and getattr(datamodule, "cross_tokenizer", False):
        raise DistillError("teacher=student_base reads the student's own tokens; remove data.teacher_tokenizer / data.teacher_vocab_size")
    if cfg.teacher.get("cache"):
        if getattr(datamodule, "cross_tokenizer", False):
            raise DistillError(
                "teacher.cache=true stores the teacher's top-k on the student's tokens, but this teacher has its own "
                "tokenizer (data.teacher_tokenizer / data.teacher_vocab_size) and loss=lm_uld reads its whole sorted "
                "distribution at each aligned position; set teacher.cache=false (the teacher then runs every step)"
            )
        cached_loss_settings(loss)  # a loss the top-k cache cannot serve fails before any training
    check_cross_tokenizer_terms(loss, datamodule)
    example = datamodule.datasets["train"].examples[0]
    audit = mask_audit(*example, datamodule.tokenizer)
    log.info("Loss-mask audit of the first training example:\n%s", audit)
    (run_dir / "mask_audit.txt").write_text(audit + "\n")  # before any training: a wrong mask shows at once

    with L.pytorch.utilities.seed.isolate_rng():  # built now from the seed; the teacher's random draws stay as they were
        L.seed_everything(cfg.seed, workers=True)
        student = build_model(cfg.student.name, vocab, **model_options(cfg.student))
    resume_path = resume_checkpoint(cfg, run_dir, student)
    resume_from = str(resume_path) if resume_path is not None else None
    # the run's one Trainer, built before the teacher: settings Lightning rejects fail here
    trainer = make_trainer(
        cfg, callbacks=make_callbacks(cfg), logger=make_logger(cfg, resume_from is not None), plugins=[AtomicCheckpointIO()]
    )
    if self_distilled:  # nothing to load or train: the teacher is the student's base model, adapters disabled
        teacher = PreparedTeacher(instantiate(cfg.teacher)(student), origin="student", source=STUDENT_BASE_SOURCE)
    else:
        teacher = prepare_lm_model(cfg, cfg.teacher, datamodule.teacher_data(), run_dir, "teacher")
    console.PHASES.enter_once("teacher", f"teacher {lm_model_name(cfg.teacher)}: {teacher.source}")
    L.seed_everything(cfg.seed, workers=True)
    student_tokenizer = load_tokenizer(cfg.student.path) if cfg.student.get("path") else datamodule.tokenizer
    if datamodule.cross_tokenizer:  # two vocabularies by design: aligned, not reconciled
        return run_across_tokenizers(cfg, datamodule, run_dir, started, loss, trainer, teacher, student, resume_from)
    teacher_model, student_run, note = reconcile_vocabularies(teacher.model, student, datamodule.tokenizer, student_tokenizer)
    if note:
        log.info("%s", note)
    data_examples = apply_sequence_kd(cfg, datamodule, teacher_model)  # the teacher's completions, generated once
    teacher_outputs = lm_teacher_cache_from_config(cfg, datamodule, teacher_model, loss) if cfg.teacher.get("cache") else None
    module = DistillationModule(
        student_run, teacher_model, loss, optimizer=instantiate(cfg.optimizer),
        lr_scheduler=instantiate(cfg.lr_scheduler) if cfg.get("lr_scheduler") else None,
        teacher_source=teacher.source, teacher_dtype=cfg.teacher.get("dtype"), teacher_outputs=teacher_outputs,
        on_policy=on_policy_from_config(cfg, datamodule),
    )
    check_resumed_teacher(resume_from, module)
    announce_distilling(cfg, loss)
    with teacher_outputs or contextlib.nullcontext():
        if teacher_outputs is not None and trainer.world_size > 1:
            fill_ahead(teacher_outputs, cfg, datamodule, teacher_model)  # each process sees only its share of an epoch
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if not trainer.is_global_zero:
        return {}
    best = best_checkpoint(trainer)
    load_best_student(module, best)
    export_dir = save_language_model(student, student_tokenizer, run_dir / "student_model")
    if data_examples is not None:  # the baseline trains alone on the data, as without sequence-level KD
        datamodule.datasets["train"].examples = data_examples

    models = {"teacher": (lm_model_name(cfg.teacher), teacher_model), "student": (lm_model_name(cfg.student), student_run)}
    if cfg.get("baseline"):
        L.seed_everything(cfg.seed, workers=True)
        baseline = prepare_lm_model(cfg, cfg.student, datamodule, run_dir, "baseline")
        console.PHASES.enter_once("baseline", f"baseline {lm_model_name(cfg.student)}: {baseline.source}")
        models["baseline"] = (lm_model_name(cfg.student), reconcile_vocabularies(teacher.model, baseline.model, datamodule.tokenizer, student_tokenizer)[1])
    console.PHASES.enter("measure", f"measuring the {', the '.join(models)} on the test set (perplexity, agreement, KL, speed)")
    report = language_model_report(models, datamodule, run_dir, notes=[note] if note else [], mask_audit=audit,
                                   speed=bool(cfg.get("report", {}).get("speed", True)))
    rows = {row["role"]: row for row in report["rows"]}
    summary = {
        "task": "language_model",
        "teacher": {"name": models["teacher"][0], "source": teacher.source, "origin": teacher.origin,
                    "perplexity": rows["teacher"]["perplexity"], "parameters": rows["teacher"]["parameters"],
                    "test_accuracy": rows["teacher"]["accuracy"],
                    "sha256": module.teacher_sha256, "sha256_after": weights_sha256(teacher.model),
                    **module.teacher_cast_hash()},
        "student": {"name": models["student"][0], "perplexity": rows["student"]["perplexity"],
                    "parameters": rows["student"]["parameters"], "agreement": rows["student"]["agreement"],
                    "kl": rows["student"]["kl"], "checkpoint": best or None, "weights": str(export_dir),
                    "test_accuracy": rows["student"]["accuracy"],  # next-token accuracy (sweep summaries rank by it)
                    "best_val_accuracy": best_score(trainer)},
        "agreement": rows["student"]["agreement"],
        "loss": {name: repr(term) for name, term in module.loss_terms.items()},
        "seconds": time.perf_counter() - started,
        "run_dir": str(run_dir),
        "logs": getattr(trainer.logger, "log_dir", None),
        "report": {"json": str(run_dir / "report_lm.json"), "markdown": str(run_dir / "report_lm.md")},
        "line": report["summary"],
    }
    if teacher_outputs is not None:
        summary["teacher_cache"] = {"directory": str(teacher_outputs.directory), "origin": teacher_outputs.origin,
                                    "complete": teacher_outputs.complete, "teacher_batches": teacher_outputs.teacher_batches,
                                    "top_k": teacher_outputs.k, "bytes_per_token": teacher_outputs.bytes_per_token()}
    if "baseline" in rows:
        summary["baseline"] = {k: rows["baseline"][k] for k in ("perplexity", "agreement", "kl")}
    write_summary(summary, run_dir)
    finish_loggers(trainer)  # before the report: its closing lines must not follow the pointers
    print((run_dir / "report_lm.md").read_text(), flush=True)
    console.say(console.pointers(summary))
    return summary
