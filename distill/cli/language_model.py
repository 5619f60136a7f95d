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
import json
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
from distill.cli.lm_teacher_cache import cached_loss_settings, fill_ahead, lm_teacher_cache_from_config
from distill.cli.resume_checks import check_resumed_teacher, resume_checkpoint
from distill.cli.saved_run import find_run_config, load_run_config
from distill.cli import console
from distill.cli.teachers import NOT_IN_TEACHER_KEY, is_student_base, model_spec, without
from distill.cli.training import loss_terms, make_callbacks, make_logger, make_trainer
from distill.errors import DistillError
from distill.lm.mask_audit import mask_audit
from distill.lm.shared_vocabulary import shared_vocabulary
from distill.lm.training import CausalLMTraining
from distill.lm.vocabulary import reconcile_vocabularies
from distill.lm.export import save_language_model
from distill.models import build_model, check_model_name
from distill.models.causal_lm import load_tokenizer
from distill.models.fingerprint import weights_sha256
from distill.module import DistillationModule
from distill.losses.cross_tokenizer_term import CrossTokenizerTerm
from distill.losses.token_exact_match import TokenExactMatchKL
from distill.report.lm_cross_report import cross_tokenizer_report
from distill.report.lm_report import language_model_report
from distill.report.run_summary import write_summary
from distill.teachers import PreparedTeacher, TeacherCache, prepare_teacher

log = logging.getLogger("distill")


#: where the teacher of ``teacher=student_base`` comes from, for the log, the report and the summary
STUDENT_BASE_SOURCE = "the student's base model (its LoRA adapters disabled)"


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
            raise DistillError("teacher.cache=true is not available across tokenizers yet; set teacher.cache=false")
        cached_loss_settings(loss)  # a loss the top-k cache cannot serve fails before any training
    check_cross_tokenizer_terms(loss, datamodule)
    example = datamodule.datasets["train"].examples[0]
    audit = mask_audit(*example, datamodule.tokenizer)
    log.info("Loss-mask audit of the first training example:\n%s", audit)
    (run_dir / "mask_audit.txt").write_text(audit + "\n")  # before any training: a wrong mask shows at once

    with L.pytorch.utilities.seed.isolate_rng():  # built now from the seed; the teacher's random draws stay as they were
        L.seed_everything(cfg.seed, workers=True)
        student = build_model(cfg.student.name, vocab, **_options(cfg.student))
    resume_path = resume_checkpoint(cfg, run_dir, student)
    resume_from = str(resume_path) if resume_path is not None else None
    # the run's one Trainer, built before the teacher: settings Lightning rejects fail here
    trainer = make_trainer(
        cfg, callbacks=make_callbacks(cfg), logger=make_logger(cfg, resume_from is not None), plugins=[AtomicCheckpointIO()]
    )
    if self_distilled:  # nothing to load or train: the teacher is the student's base model, adapters disabled
        teacher = PreparedTeacher(instantiate(cfg.teacher)(student), origin="student", source=STUDENT_BASE_SOURCE)
    else:
        teacher = _prepare(cfg, cfg.teacher, datamodule.teacher_data(), run_dir, "teacher")
    console.PHASES.enter_once("teacher", f"teacher {_model_name(cfg.teacher)}: {teacher.source}")
    L.seed_everything(cfg.seed, workers=True)
    student_tokenizer = load_tokenizer(cfg.student.path) if cfg.student.get("path") else datamodule.tokenizer
    if datamodule.cross_tokenizer:  # two vocabularies by design: aligned, not reconciled
        return _run_across_tokenizers(cfg, datamodule, run_dir, started, loss, trainer, teacher, student, resume_from)
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
    _distilling_phase(cfg, loss)
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

    models = {"teacher": (_model_name(cfg.teacher), teacher_model), "student": (_model_name(cfg.student), student_run)}
    if cfg.get("baseline"):
        L.seed_everything(cfg.seed, workers=True)
        baseline = _prepare(cfg, cfg.student, datamodule, run_dir, "baseline")
        console.PHASES.enter_once("baseline", f"baseline {_model_name(cfg.student)}: {baseline.source}")
        models["baseline"] = (_model_name(cfg.student), reconcile_vocabularies(teacher.model, baseline.model, datamodule.tokenizer, student_tokenizer)[1])
    console.PHASES.enter("measure", f"measuring the {', the '.join(models)} on the test set (perplexity, agreement, KL, speed)")
    report = language_model_report(models, datamodule, run_dir, notes=[note] if note else [], mask_audit=audit,
                                   speed=bool(cfg.get("report", {}).get("speed", True)))
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
    if teacher_outputs is not None:
        summary["teacher_cache"] = {"directory": str(teacher_outputs.directory), "origin": teacher_outputs.origin,
                                    "complete": teacher_outputs.complete, "teacher_batches": teacher_outputs.teacher_batches,
                                    "top_k": teacher_outputs.k, "bytes_per_token": teacher_outputs.bytes_per_token()}
    if "baseline" in rows:
        summary["baseline"] = {k: rows["baseline"][k] for k in ("perplexity", "agreement", "kl")}
    write_summary(summary, run_dir)
    print((run_dir / "report_lm.md").read_text(), flush=True)
    console.say(console.pointers(summary))
    return summary


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


def _run_across_tokenizers(cfg: DictConfig, datamodule: Any, run_dir: Path, started: float, loss: dict[str, Any],
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
    _distilling_phase(cfg, loss)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if not trainer.is_global_zero:
        return {}
    best = best_checkpoint(trainer)
    load_best_student(module, best)
    export_dir = save_language_model(student, datamodule.tokenizer, run_dir / "student_model")
    models = {"teacher": (_model_name(cfg.teacher), teacher.model, datamodule.teacher_data()),
              "student": (_model_name(cfg.student), student, datamodule)}
    if cfg.get("baseline"):  # the student trained alone on its own tokens: comparable with the student, token for token
        L.seed_everything(cfg.seed, workers=True)
        baseline = _prepare(cfg, cfg.student, datamodule, run_dir, "baseline")
        console.PHASES.enter_once("baseline", f"baseline {_model_name(cfg.student)}: {baseline.source}")
        models["baseline"] = (_model_name(cfg.student), baseline.model, datamodule)
    console.PHASES.enter("measure", f"measuring the {', the '.join(models)} on the test set, each on its own tokens (perplexity)")
    report = cross_tokenizer_report(models, run_dir)
    rows = {row["role"]: row for row in report["rows"]}
    summary = {
        "task": "language_model", "cross_tokenizer": True,
        "teacher": {"name": _model_name(cfg.teacher), "source": teacher.source, "origin": teacher.origin,
                    "perplexity": rows["teacher"]["perplexity"], "parameters": rows["teacher"]["parameters"],
                    "vocabulary": rows["teacher"]["vocabulary"], "test_accuracy": rows["teacher"]["accuracy"],
                    "sha256": module.teacher_sha256, "sha256_after": weights_sha256(teacher.model)},
        "student": {"name": _model_name(cfg.student), "perplexity": rows["student"]["perplexity"],
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
    print((run_dir / "report_lm.md").read_text(), flush=True)
    console.say(console.pointers(summary))
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
        "data": _data_key(cfg.data, role),
        "trainer": without(cfg.trainer, NOT_IN_TEACHER_KEY),
        "seed": cfg.seed, "model": model_cfg.name, "options": _key_options(options), "epochs": epochs,
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


def _data_key(data: DictConfig, role: str) -> dict[str, Any]:
    """The data settings in a cached model's key: for the teacher of a cross-tokenizer run, those of its own tokenization
    (the key of the same teacher trained in a plain run); the ``teacher_*`` keys only when set (older keys stay valid)."""
    settings = without(data, NOT_IN_TEACHER_KEY | {"cache_dir"})
    own = {key: settings.pop(key, None) for key in ("teacher_tokenizer", "teacher_vocab_size", "teacher_block_size")}
    if role == "teacher" and (own["teacher_tokenizer"] or own["teacher_vocab_size"]):
        settings.update(tokenizer=own["teacher_tokenizer"], vocab_size=own["teacher_vocab_size"] or settings.get("vocab_size"),
                        block_size=own["teacher_block_size"] or settings.get("block_size"))
    elif own["teacher_tokenizer"] or own["teacher_vocab_size"]:
        settings.update({key: value for key, value in own.items() if value is not None})
    return settings


def _distilling_phase(cfg: DictConfig, loss: dict[str, Any]) -> None:
    teacher, student = _model_name(cfg.teacher), _model_name(cfg.student)
    console.PHASES.enter("distill", f"distilling {teacher} into {student} ({console.epochs(cfg.trainer.max_epochs)}, "
                                    f"loss {console.loss_terms_text(loss)})")


def _training(cfg: DictConfig, datamodule: Any, run_dir: Path, name: str, epochs: int, optimizer: Any,
              lr_scheduler: Any) -> Callable[[nn.Module], None]:
    role = name.removesuffix("_training")

    def train(model: nn.Module) -> None:
        model_cfg = cfg.teacher if role == "teacher" else cfg.student
        what = "the teacher" if role == "teacher" else "the student alone, the baseline"
        console.PHASES.enter(role, f"training {what} ({_model_name(model_cfg)}, {console.epochs(epochs)})")
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
    if is_student_base(run_cfg.teacher):
        teacher = _student_base_again(run_cfg, datamodule, folder.parent / "summary.json")
    else:
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


def _student_base_again(run_cfg: DictConfig, datamodule: Any, summary_file: Path) -> PreparedTeacher:
    """The teacher of a ``teacher=student_base`` run, rebuilt as the run built its student (same seed), checked
    against the base weights' hash in the run's summary."""
    with L.pytorch.utilities.seed.isolate_rng():
        L.seed_everything(run_cfg.seed, workers=True)
        student = build_model(run_cfg.student.name, datamodule.num_classes, **_options(run_cfg.student))
    teacher = PreparedTeacher(instantiate(run_cfg.teacher)(student), origin="student", source=STUDENT_BASE_SOURCE)
    expected = json.loads(summary_file.read_text())["teacher"]["sha256"] if summary_file.is_file() else None
    if expected is None or weights_sha256(teacher.model) != expected:
        reason = f"{summary_file} is missing" if expected is None else "the rebuilt base weights differ from the run's"
        raise DistillError(f"the run's teacher was its student's base model (teacher=student_base) and cannot be rebuilt: "
                           f"{reason}; evaluate the student with a run of another teacher")
    return teacher


def _options(model_cfg: DictConfig) -> dict[str, Any]:
    return model_spec(model_cfg).options


def _key_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that determine a trained model: checkpointing does not, LoRA without a rank is none, so the
    cache key of a model trained without them stays what it was before they existed."""
    key = {k: v for k, v in options.items() if k != "gradient_checkpointing"}
    if not (key.get("lora") or {}).get("r"):
        key.pop("lora", None)
    return key


def _model_name(model_cfg: DictConfig) -> str:
    """A readable name: the saved model's directory, or the model type and depth of a built one."""
    if is_student_base(model_cfg):
        return "student base"
    if model_cfg.get("path"):
        return Path(str(model_cfg.path)).name
    config = model_cfg.get("config") or {}
    layers = config.get("n_layer") or config.get("num_hidden_layers")
    width = config.get("n_embd") or config.get("hidden_size")
    kind = config.get("model_type") or "lm"
    return f"{kind}-{layers}x{width}" if layers and width else str(model_cfg.name)
