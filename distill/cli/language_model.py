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

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from distill.checkpoint_io import AtomicCheckpointIO
from distill.cli.best_student import best_checkpoint, best_score, load_best_student
from distill.cli.lm_generation import apply_sequence_kd, on_policy_from_config
from distill.cli.resume_checks import check_resumed_teacher, resume_checkpoint
from distill.cli.saved_run import find_run_config, load_run_config
from distill.cli.teachers import NOT_IN_TEACHER_KEY, model_spec, without
from distill.cli.training import loss_terms, make_callbacks, make_logger, make_trainer
from distill.errors import DistillError
from distill.lm.mask_audit import mask_audit
from distill.lm.training import CausalLMTraining
from distill.lm.vocabulary import reconcile_vocabularies
from distill.lm.export import save_language_model
from distill.models import build_model, check_model_name
from distill.models.causal_lm import load_tokenizer
from distill.models.fingerprint import weights_sha256
from distill.module import DistillationModule
from distill.report.lm_report import language_model_report
from distill.report.run_summary import write_summary
from distill.teachers import PreparedTeacher, TeacherCache, prepare_teacher

log = logging.getLogger("distill")


def is_language_model_data(datamodule: Any) -> bool:
    return bool(getattr(datamodule, "is_language_model", False))


def run_language_model(cfg: DictConfig, datamodule: Any, run_dir: Path, started: float) -> dict[str, Any]:
    """One LM distillation job; returns its summary (also written to ``summary.json``)."""
    vocab = datamodule.num_classes
    loss = loss_terms(cfg.loss)
    for model_cfg in (cfg.teacher, cfg.student):
        check_model_name(model_cfg.name)
    if cfg.teacher.get("cache"):
        raise DistillError("teacher.cache=true is not available for language models yet; set teacher.cache=false")
    example = datamodule.datasets["train"].examples[0]
    audit = mask_audit(*example, datamodule.tokenizer)
    log.info("Loss-mask audit of the first training example:\n%s", audit)

    with L.pytorch.utilities.seed.isolate_rng():  # built now from the seed; the teacher's random draws stay as they were
        L.seed_everything(cfg.seed, workers=True)
        student = build_model(cfg.student.name, vocab, **_options(cfg.student))
    resume_path = resume_checkpoint(cfg, run_dir, student)
    resume_from = str(resume_path) if resume_path is not None else None
    # the run's one Trainer, built before the teacher: settings Lightning rejects fail here
    trainer = make_trainer(
        cfg, callbacks=make_callbacks(cfg), logger=make_logger(cfg, resume_from is not None), plugins=[AtomicCheckpointIO()]
    )
    teacher = _prepare(cfg, cfg.teacher, datamodule, run_dir, "teacher")
    L.seed_everything(cfg.seed, workers=True)
    student_tokenizer = load_tokenizer(cfg.student.path) if cfg.student.get("path") else datamodule.tokenizer
    teacher_model, student_run, note = reconcile_vocabularies(teacher.model, student, datamodule.tokenizer, student_tokenizer)
    if note:
        log.info("%s", note)
    data_examples = apply_sequence_kd(cfg, datamodule, teacher_model)  # the teacher's completions, generated once
    module = DistillationModule(
        student_run, teacher_model, loss, optimizer=instantiate(cfg.optimizer),
        lr_scheduler=instantiate(cfg.lr_scheduler) if cfg.get("lr_scheduler") else None,
        teacher_source=teacher.source, teacher_dtype=cfg.teacher.get("dtype"),
        on_policy=on_policy_from_config(cfg, datamodule),
    )
    check_resumed_teacher(resume_from, module)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if not trainer.is_global_zero:
        return {}
    best = best_checkpoint(trainer)
    load_best_student(module, best)
    export_dir = save_language_model(student, student_tokenizer, run_dir / "student_model")
    if data_examples is not None:  # the baseline trains alone on the data, as without sequence-level KD
        datamodule.datasets["train"].examples = data_examples

    models = {"teacher": (_model_name(cfg.teacher), teacher_model), "student": (_model_name(cfg.student), student_run)}
    if cfg.get("baseline"):
        L.seed_everything(cfg.seed, workers=True)
        baseline = _prepare(cfg, cfg.student, datamodule, run_dir, "baseline").model
        models["baseline"] = (_model_name(cfg.student), reconcile_vocabularies(teacher.model, baseline, datamodule.tokenizer, student_tokenizer)[1])
    report = language_model_report(models, datamodule, run_dir, notes=[note] if note else [],
                                   speed=bool(cfg.get("report", {}).get("speed", True)))
    (run_dir / "mask_audit.txt").write_text(audit + "\n")
    rows = {row["role"]: row for row in report["rows"]}
    summary = {
        "task": "language_model",
        "teacher": {"name": models["teacher"][0], "source": teacher.source, "origin": teacher.origin,
                    "perplexity": rows["teacher"]["perplexity"], "parameters": rows["teacher"]["parameters"],
                    "test_accuracy": rows["teacher"]["accuracy"],
                    "sha256": module.teacher_sha256, "sha256_after": weights_sha256(teacher.model)},
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
    if "baseline" in rows:
        summary["baseline"] = {k: rows["baseline"][k] for k in ("perplexity", "agreement", "kl")}
    write_summary(summary, run_dir)
    print((run_dir / "report_lm.md").read_text(), flush=True)
    return summary


def _prepare(cfg: DictConfig, model_cfg: DictConfig, datamodule: Any, run_dir: Path, role: str,
             allow_training: bool = True) -> PreparedTeacher:
    """The teacher (``role="teacher"``) or the student trained alone (``"baseline"``): given, or trained first and cached.

    ``allow_training=False``: a model that is not in the cache is an error (evaluation never retrains by surprise).
    """
    options = _options(model_cfg)
    given_weights = "DEFAULT" if role == "teacher" and options.get("path") else None  # a saved LM is a trained one
    checkpoint = model_cfg.get("checkpoint") if role == "teacher" else None
    if role == "teacher" and not (checkpoint or given_weights) and not cfg.data.get("labels", True):
        raise DistillError("the LM teacher would be trained first, which needs labels, but data.labels=false; give teacher.path=DIR")
    schedule = model_cfg.train if role == "teacher" else None
    epochs = schedule.epochs if schedule is not None else cfg.trainer.max_epochs
    optimizer = schedule.optimizer if schedule is not None else cfg.optimizer
    scheduler = schedule.get("lr_scheduler") if schedule is not None else cfg.get("lr_scheduler")
    spec = {
        "task": "language_model",
        "vocabulary": datamodule.num_classes,
        "data": without(cfg.data, NOT_IN_TEACHER_KEY | {"cache_dir"}),
        "trainer": without(cfg.trainer, NOT_IN_TEACHER_KEY),
        "seed": cfg.seed, "model": model_cfg.name, "options": options, "epochs": epochs,
        "optimizer": OmegaConf.to_container(optimizer, resolve=True),
        "lr_scheduler": OmegaConf.to_container(scheduler, resolve=True) if scheduler else None,
    }
    given = bool(checkpoint or given_weights)
    return prepare_teacher(
        model_cfg.name, datamodule.num_classes, checkpoint=checkpoint, weights=given_weights,
        trusted_checkpoint=bool(model_cfg.get("trusted_checkpoint", False)), options=options,
        train=_training(cfg, datamodule, run_dir, f"{role}_training", epochs, optimizer, scheduler) if allow_training
        else _not_in_cache(Path(cfg.cache_dir).expanduser(), role),
        cache=None if given else TeacherCache(Path(cfg.cache_dir).expanduser() / ("teachers" if role == "teacher" else "baselines")),
        spec=None if given else spec, role=role,
    )


def _training(cfg: DictConfig, datamodule: Any, run_dir: Path, name: str, epochs: int, optimizer: Any,
              lr_scheduler: Any) -> Callable[[nn.Module], None]:
    def train(model: nn.Module) -> None:
        trainer = make_trainer(
            cfg, devices=1, num_nodes=1, strategy="auto", max_epochs=epochs,
            logger=L.pytorch.loggers.CSVLogger(run_dir, name=name, version=""), callbacks=[], enable_checkpointing=False,
        )
        module = CausalLMTraining(model, optimizer=instantiate(optimizer),
                                  lr_scheduler=instantiate(lr_scheduler) if lr_scheduler else None)
        trainer.fit(module, datamodule=datamodule)

    return train


def _not_in_cache(cache_dir: Path, role: str) -> Callable[[nn.Module], None]:
    def refuse(model: nn.Module) -> None:
        raise DistillError(
            f"the run's {role} is not in the cache {cache_dir}; give the run's cache_dir=PATH, or train_teacher=true "
            "to train it again with the run's settings"
        )

    return refuse


def is_saved_language_model(path: Any) -> bool:
    """Whether ``path`` is a ``save_pretrained`` directory of a causal LM (an LM run's ``student_model/``)."""
    folder = Path(str(path)).expanduser()
    return folder.is_dir() and (folder / "config.json").is_file()


def evaluate_language_model(cfg: DictConfig, overrides: list[str], out_dir: Path) -> dict[str, Any]:
    """``python -m distill.evaluate checkpoint=RUN/student_model``: the LM report of a saved student against
    its run's teacher (from the run's cache), on the run's data; ``per_sample=true`` adds ``per_sequence.csv``."""
    import csv

    from distill.models.causal_lm import load_causal_lm
    from distill.report.lm_metrics import per_sequence_losses

    folder = Path(str(cfg.checkpoint)).expanduser()
    found = find_run_config(folder / "config.json")
    if found is None:
        raise DistillError(f"{folder} is not inside a distill run directory (no .hydra/config.yaml beside it)")
    run_cfg = load_run_config(found)
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    if "cache_dir" in given:
        run_cfg.cache_dir = cfg.cache_dir
    datamodule = instantiate(run_cfg.data)
    teacher = _prepare(run_cfg, run_cfg.teacher, datamodule, out_dir, "teacher", allow_training=bool(cfg.get("train_teacher")))
    if teacher.origin == "cache" and teacher.model is not None:
        log.info("Teacher read from the cache: %s", teacher.source)
    student, tokenizer = load_causal_lm(str(folder), {}, {}), load_tokenizer(str(folder))
    teacher_model, student_model, note = reconcile_vocabularies(teacher.model, student, datamodule.tokenizer, tokenizer)
    models = {"teacher": (_model_name(run_cfg.teacher), teacher_model), "student": (folder.parent.name + "/" + folder.name, student_model)}
    report = language_model_report(models, datamodule, out_dir, notes=[note] if note else [])
    files = {"json": str(out_dir / "report_lm.json"), "markdown": str(out_dir / "report_lm.md")}
    if cfg.get("per_sample"):
        rows = per_sequence_losses(student_model, teacher_model, datamodule.test_dataloader())
        with open(out_dir / "per_sequence.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        files["per_sequence"] = str(out_dir / "per_sequence.csv")
    print((out_dir / "report_lm.md").read_text(), flush=True)
    print(f"evaluation written to {', '.join(files.values())}", flush=True)
    return {**report, "files": files}


def _options(model_cfg: DictConfig) -> dict[str, Any]:
    return model_spec(model_cfg).options


def _model_name(model_cfg: DictConfig) -> str:
    """A readable name: the saved model's directory, or the model type and depth of a built one."""
    if model_cfg.get("path"):
        return Path(str(model_cfg.path)).name
    config = model_cfg.get("config") or {}
    layers = config.get("n_layer") or config.get("num_hidden_layers")
    width = config.get("n_embd") or config.get("hidden_size")
    kind = config.get("model_type") or "lm"
    return f"{kind}-{layers}x{width}" if layers and width else str(model_cfg.name)
