"""Distillation of an LM from a teacher with another tokenizer: the terms that can cross, aligned batches, a report
per model on its own tokens.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from distill.cli.lm_models import announce_distilling, lm_model_name, prepare_lm_model
from distill.cli.best_student import best_checkpoint, best_score, load_best_student
from distill.cli.resume_checks import check_resumed_teacher
from distill.cli.training import finish_loggers
from distill.cli import console
from distill.errors import DistillError
from distill.lm.shared_vocabulary import shared_vocabulary
from distill.lm.export import save_language_model
from distill.models.fingerprint import weights_sha256
from distill.module import DistillationModule
from distill.losses.cross_tokenizer_term import CrossTokenizerTerm
from distill.losses.token_exact_match import TokenExactMatchKL
from distill.report.lm_cross_report import cross_tokenizer_report
from distill.report.run_summary import write_summary
from distill.teachers import PreparedTeacher

log = logging.getLogger("distill")


def check_cross_tokenizer_terms(loss: dict[str, Any], datamodule: Any) -> None:
    """Cross-tokenizer terms need cross-tokenizer data, and token-by-token comparisons cannot work across vocabularies."""
    cross = bool(getattr(datamodule, "cross_tokenizer", False))
    for name, term in loss.items():
        if isinstance(term, CrossTokenizerTerm) and not cross:
            raise DistillError(
                f"loss term '{name}' ({type(term).__name__}) aligns two tokenizers, but the teacher reads the student's "
                "tokens; give the teacher's tokenizer (data.teacher_tokenizer=DIR or data.teacher_vocab_size=N) or another loss"
            )
        if cross and getattr(term, "compares_outputs", False):
            raise DistillError(
                f"loss term '{name}' ({type(term).__name__}) compares the two vocabularies token by token, but the teacher "
                "has another tokenizer; use loss=lm_uld (or remove it: ~loss." + name + ")"
            )
        if cross and getattr(term, "teacher_layers", ()):
            raise DistillError(f"loss term '{name}' ({type(term).__name__}) reads teacher layers position by position, "
                               f"which another tokenizer does not match; remove it (~loss.{name})")


def run_across_tokenizers(cfg: DictConfig, datamodule: Any, run_dir: Path, started: float, loss: dict[str, Any],
                           trainer: L.Trainer, teacher: PreparedTeacher, student: nn.Module,
                           resume_from: str | None) -> dict[str, Any]:
    """Distillation from a teacher with another tokenizer: aligned batches, the cross-tokenizer terms, a per-model report."""
    shared = None
    for term in loss.values():
        if isinstance(term, TokenExactMatchKL) and not len(term.student_ids):
            shared = shared or shared_vocabulary(datamodule.tokenizer, datamodule.teacher_tokenizer)
            term.set_shared_vocabulary(*shared)
    if shared is not None:
        log.info("Student and teacher vocabularies share %d token strings (the exact-match term's sub-vocabulary)", len(shared[0]))
    module = DistillationModule(
        student, teacher.model, loss, optimizer=instantiate(cfg.optimizer),
        lr_scheduler=instantiate(cfg.lr_scheduler) if cfg.get("lr_scheduler") else None,
        teacher_source=teacher.source, teacher_dtype=cfg.teacher.get("dtype"),
    )
    check_resumed_teacher(resume_from, module)
    announce_distilling(cfg, loss)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if not trainer.is_global_zero:
        return {}
    best = best_checkpoint(trainer)
    load_best_student(module, best)
    export_dir = save_language_model(student, datamodule.tokenizer, run_dir / "student_model")
    models = {"teacher": (lm_model_name(cfg.teacher), teacher.model, datamodule.teacher_data()),
              "student": (lm_model_name(cfg.student), student, datamodule)}
    if cfg.get("baseline"):  # the student trained alone on its own tokens: comparable with the student, token for token
        L.seed_everything(cfg.seed, workers=True)
        baseline = prepare_lm_model(cfg, cfg.student, datamodule, run_dir, "baseline")
        console.PHASES.enter_once("baseline", f"baseline {lm_model_name(cfg.student)}: {baseline.source}")
        models["baseline"] = (lm_model_name(cfg.student), baseline.model, datamodule)
    console.PHASES.enter("measure", f"measuring the {', the '.join(models)} on the test set, each on its own tokens (perplexity)")
    report = cross_tokenizer_report(models, run_dir)
    rows = {row["role"]: row for row in report["rows"]}
    summary = {
        "task": "language_model", "cross_tokenizer": True,
        "teacher": {"name": lm_model_name(cfg.teacher), "source": teacher.source, "origin": teacher.origin,
                    "perplexity": rows["teacher"]["perplexity"], "parameters": rows["teacher"]["parameters"],
                    "vocabulary": rows["teacher"]["vocabulary"], "test_accuracy": rows["teacher"]["accuracy"],
                    "sha256": module.teacher_sha256, "sha256_after": weights_sha256(teacher.model),
                    **module.teacher_cast_hash()},
        "student": {"name": lm_model_name(cfg.student), "perplexity": rows["student"]["perplexity"],
                    "parameters": rows["student"]["parameters"], "vocabulary": rows["student"]["vocabulary"],
                    "checkpoint": best or None, "weights": str(export_dir), "test_accuracy": rows["student"]["accuracy"],
                    "best_val_accuracy": best_score(trainer)},
        "agreement": None,  # top-1 agreement compares token ids of one vocabulary: not measured across tokenizers
        "loss": {name: repr(term) for name, term in module.loss_terms.items()},
        "seconds": time.perf_counter() - started, "run_dir": str(run_dir),
        "logs": getattr(trainer.logger, "log_dir", None),
        "report": {"json": str(run_dir / "report_lm.json"), "markdown": str(run_dir / "report_lm.md")},
        "line": report["summary"],
    }
    if "baseline" in rows:
        summary["baseline"] = {k: rows["baseline"][k] for k in ("perplexity", "accuracy")}
    write_summary(summary, run_dir)
    finish_loggers(trainer)  # before the report: its closing lines must not follow the pointers
    print((run_dir / "report_lm.md").read_text(), flush=True)
    console.say(console.pointers(summary))
    return summary
