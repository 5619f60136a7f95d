"""The models of an LM run from its config: the teacher or the student trained alone (given, or trained first and
cached), the student's options and the names the console, report and summary show.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from distill.cli import console
from distill.cli.teachers import NOT_IN_TEACHER_KEY, is_student_base, model_spec, without
from distill.cli.training import make_trainer
from distill.errors import DistillError
from distill.lm.training import CausalLMTraining
from distill.models import build_model
from distill.models.fingerprint import weights_sha256
from distill.teachers import PreparedTeacher, TeacherCache, prepare_teacher

#: where the teacher of ``teacher=student_base`` comes from, for the log, the report and the summary
STUDENT_BASE_SOURCE = "the student's base model (its LoRA adapters disabled)"


def prepare_lm_model(cfg: DictConfig, model_cfg: DictConfig, datamodule: Any, run_dir: Path, role: str,
             allow_training: bool = True) -> PreparedTeacher:
    """The teacher (``role="teacher"``) or the student trained alone (``"baseline"``): given, or trained first and cached.

    ``allow_training=False``: a model that is not in the cache is an error (evaluation never retrains by surprise).
    """
    options = model_options(model_cfg)
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
        "seed": cfg.seed, "model": model_cfg.name, "options": key_options(options), "epochs": epochs,
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


def announce_distilling(cfg: DictConfig, loss: dict[str, Any]) -> None:
    teacher, student = lm_model_name(cfg.teacher), lm_model_name(cfg.student)
    console.PHASES.enter("distill", f"distilling {teacher} into {student} ({console.epochs(cfg.trainer.max_epochs)}, "
                                    f"loss {console.loss_terms_text(loss)})")


def _training(cfg: DictConfig, datamodule: Any, run_dir: Path, name: str, epochs: int, optimizer: Any,
              lr_scheduler: Any) -> Callable[[nn.Module], None]:
    role = name.removesuffix("_training")

    def train(model: nn.Module) -> None:
        model_cfg = cfg.teacher if role == "teacher" else cfg.student
        what = "the teacher" if role == "teacher" else "the student alone, the baseline"
        console.PHASES.enter(role, f"training {what} ({lm_model_name(model_cfg)}, {console.epochs(epochs)})")
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


def student_base_again(run_cfg: DictConfig, datamodule: Any, summary_file: Path) -> PreparedTeacher:
    """The teacher of a ``teacher=student_base`` run, rebuilt as the run built its student (same seed), checked
    against the base weights' hash in the run's summary."""
    with L.pytorch.utilities.seed.isolate_rng():
        L.seed_everything(run_cfg.seed, workers=True)
        student = build_model(run_cfg.student.name, datamodule.num_classes, **model_options(run_cfg.student))
    teacher = PreparedTeacher(instantiate(run_cfg.teacher)(student), origin="student", source=STUDENT_BASE_SOURCE)
    expected = json.loads(summary_file.read_text())["teacher"]["sha256"] if summary_file.is_file() else None
    if expected is None or weights_sha256(teacher.model) != expected:
        reason = f"{summary_file} is missing" if expected is None else "the rebuilt base weights differ from the run's"
        raise DistillError(f"the run's teacher was its student's base model (teacher=student_base) and cannot be rebuilt: "
                           f"{reason}; evaluate the student with a run of another teacher")
    return teacher


def model_options(model_cfg: DictConfig) -> dict[str, Any]:
    return model_spec(model_cfg).options


def key_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that determine a trained model: checkpointing does not, LoRA without a rank is none, so the
    cache key of a model trained without them stays what it was before they existed."""
    key = {k: v for k, v in options.items() if k != "gradient_checkpointing"}
    if not (key.get("lora") or {}).get("r"):
        key.pop("lora", None)
    return key


def lm_model_name(model_cfg: DictConfig) -> str:
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
