"""Teachers, ensembles and baselines from a run's config: given, pretrained, or trained first and cached."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from distill.cli.training import supervised_training
from distill.data.base import DistillDataModule
from distill.data.contract import check_cacheable
from distill.errors import DistillError
from distill.losses.base import LossTerm
from distill.models import ModelSpec, check_model_name, weights_sha256
from distill.teachers import PreparedTeacher, TeacherCache, TeacherOutputCache, prepare_teacher
from distill.teachers.ensemble_spec import EnsembleSpec

log = logging.getLogger("distill")

# settings that do not change the trained teacher, so changing them reuses it
NOT_IN_TEACHER_KEY = {
    "num_workers", "max_epochs", "log_every_n_steps", "enable_progress_bar", "enable_model_summary",
    "default_root_dir", "callbacks", "logger", "devices", "num_nodes", "strategy", "sync_batchnorm",
    "with_index", "download",
}
#: the constructor of teacher=ensemble's config (a saved run's config may name none)
_ENSEMBLE_TARGET = "distill.teachers.ensemble_spec.EnsembleSpec"
#: keys of teacher=ensemble's config: EnsembleSpec's arguments and Hydra's own
_ENSEMBLE_KEYS = {*inspect.signature(EnsembleSpec).parameters, "_target_", "_recursive_", "_convert_"}


#: the constructor of a teacher/student config that names none (a run saved before configs had a
#: ``_target_``, an ensemble member given on the command line)
_MODEL_TARGET = "distill.models.ModelSpec"


def model_spec(model_config: DictConfig) -> ModelSpec:
    """Instantiate a teacher/student config: its ``_target_`` (:class:`~distill.models.ModelSpec`) with its keys.

    The schedule under ``train`` stays a plain config (it is instantiated when the teacher trains).
    """
    resolved = OmegaConf.to_container(model_config, resolve=True)
    resolved.setdefault("_target_", _MODEL_TARGET)
    return instantiate(resolved, _recursive_=False, _convert_="all")


def without(node: DictConfig, keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in keys}


def _not_empty(**entries: Any) -> dict[str, Any]:
    """Entries that are not empty: a spec without options stays the same key as before they existed."""
    return {k: v for k, v in entries.items() if v}


def trained_first_spec(cfg: DictConfig, datamodule: Any, data: DictConfig | None = None, **what: Any) -> dict[str, Any]:
    """Everything that determines a model distill trains itself, so a different setting never reuses it.

    ``data`` is the config of the data it is trained on, when not ``cfg.data`` (an ensemble member's own view).
    """
    return {
        "num_classes": datamodule.num_classes,
        "data": without(cfg.data if data is None else data, NOT_IN_TEACHER_KEY),
        "trainer": without(cfg.trainer, NOT_IN_TEACHER_KEY),
        "seed": cfg.seed,
        **{k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v for k, v in what.items()},
    }


def teacher_spec(cfg: DictConfig, teacher: DictConfig, datamodule: Any, data: DictConfig | None = None) -> dict[str, Any]:
    """The cache key of a teacher distill trains first."""
    spec = model_spec(teacher)
    return trained_first_spec(cfg, datamodule, data, model=spec.name, train=spec.train, **_not_empty(options=spec.options))


def is_ensemble(teacher: DictConfig) -> bool:
    return teacher.get("_target_") == _ENSEMBLE_TARGET or teacher.get("members") is not None


def ensemble_spec(teacher: DictConfig) -> EnsembleSpec:
    """Instantiate teacher=ensemble's config; its members and schedule stay configs."""
    node = teacher.copy()
    with open_dict(node):
        node.setdefault("_target_", _ENSEMBLE_TARGET)
    return instantiate(node, _recursive_=False)


def teacher_from_config(cfg: DictConfig, datamodule: Any, run_dir: Path) -> PreparedTeacher:
    """The run's teacher (or ensemble of teachers), each obtained from its checkpoint, weights or the cache."""
    if not is_ensemble(cfg.teacher):
        return _one_teacher(cfg, cfg.teacher, datamodule, None, run_dir, "teacher_training")
    spec, prepared = ensemble_spec(cfg.teacher), {}
    for name, member in spec.members.items():
        member, data = member_config(cfg, name, member)
        member_data = datamodule if data is None else instantiate(data)
        prepared[name] = _one_teacher(cfg, member, member_data, data, run_dir, f"teacher_training_{name}")
    ensemble = spec.ensemble({name: p.model for name, p in prepared.items()})
    origins = dict.fromkeys(p.origin for p in prepared.values())
    source = f"ensemble ({spec.combine}) of " + "; ".join(f"{n}: {p.source}" for n, p in prepared.items())
    return PreparedTeacher(ensemble, "+".join(origins), source)


def _one_teacher(
    cfg: DictConfig, teacher: DictConfig, datamodule: Any, data: DictConfig | None, run_dir: Path, log_name: str
) -> PreparedTeacher:
    """One teacher (or ensemble member) described by ``teacher``, trained first on ``datamodule`` if need be."""
    spec = model_spec(teacher)
    given = spec.checkpoint or spec.weights
    if not given and not (cfg.data if data is None else data).get("labels", True):
        raise DistillError(
            f"teacher {spec.name} would be trained first, which needs labels, but data.labels=false; "
            "give teacher.checkpoint=PATH (e.g. a teacher cached by a run with labels) or teacher.weights=NAME"
        )
    schedule = spec.train or {}
    return prepare_teacher(
        spec.name,
        datamodule.num_classes,
        checkpoint=spec.checkpoint,
        weights=spec.weights,
        trusted_checkpoint=spec.trusted_checkpoint,
        options=spec.options,
        train=supervised_training(
            cfg, datamodule, run_dir, log_name, schedule.get("epochs"), schedule.get("optimizer"),
            schedule.get("lr_scheduler"), phase=("teacher", f"teacher ({spec.name}"),
        ),
        cache=None if given else TeacherCache(Path(cfg.cache_dir).expanduser() / "teachers"),
        keep_dir=run_dir,
        spec=None if given else teacher_spec(cfg, teacher, datamodule, data),
    )


def member_config(cfg: DictConfig, name: str, member: Any) -> tuple[DictConfig, DictConfig | None]:
    """An ensemble member as a single teacher's config, and the config of its own data view (None: the run's)."""
    if not isinstance(member, DictConfig) or not member.get("name"):
        raise DistillError(
            f"teacher.members.{name} must be a teacher config with a name, got {member!r}; "
            f"e.g. teacher.members.{name}={{name: resnet18, checkpoint: PATH}}"
        )
    member = member.copy()
    with open_dict(member):
        data = member.pop("data", None)
        # a member without its own schedule is trained (if need be) on the ensemble's
        member.train = OmegaConf.merge(cfg.teacher.train, member.get("train") or {})
        for key in ("checkpoint", "weights"):
            member.setdefault(key, None)
    return member, None if data is None else OmegaConf.merge(cfg.data, data)


#: ``teacher=student_base``: LoRA self-distillation, the student's base model with its adapters disabled
STUDENT_BASE = "distill.teachers.adapters_disabled.AdaptersDisabled"


def is_student_base(teacher: DictConfig) -> bool:
    """Whether the teacher config is ``teacher=student_base`` (built from the run's student, not by name)."""
    return teacher.get("_target_") == STUDENT_BASE


def display_name(model_config: DictConfig) -> str:
    """What the console, the report and the summary call a teacher or student: a saved Hugging Face model's
    directory name, one built from another's config as that directory with its layer count, else the ``name``."""
    path = OmegaConf.select(model_config, "path", default=None, throw_on_missing=False)
    config_from = OmegaConf.select(model_config, "config_from", default=None, throw_on_missing=False)
    if path:
        return Path(str(path)).name
    if config_from:
        layers = OmegaConf.select(model_config, "config.num_hidden_layers", default=None, throw_on_missing=False)
        depth = f"{layers} layer{'s' if layers != 1 else ''}" if layers else "new weights"
        return f"{Path(str(config_from)).name} ({depth})"
    return str(model_config.get("name"))


def check_teacher_names(teacher: DictConfig) -> None:
    """Fail before any training on an unknown teacher (or member) name, or an ensemble without members."""
    if is_student_base(teacher):
        raise DistillError(
            "teacher=student_base (the student's base model with its LoRA adapters disabled) is for language models; "
            "use it with experiment=lm (or data=lm_text) and student.lora.r=8, or give another teacher"
        )
    if not is_ensemble(teacher):
        check_model_name(teacher.name)
        # a mandatory ??? of the teacher's config is named before the student is built from it
        missing = [key for key in teacher.keys() if OmegaConf.is_missing(teacher, key)]
        if missing:
            value = "DIR" if missing[0] == "path" else "VALUE"
            raise DistillError(f"{missing[0]} is not set: give teacher.{missing[0]}={value} on the command line")
        return
    if not teacher.members:
        raise DistillError("teacher=ensemble needs members; give teacher.members={a: {name: resnet18, ...}, ...}")
    unknown = sorted(set(teacher) - _ENSEMBLE_KEYS)
    if unknown:
        raise DistillError(
            f"teacher=ensemble does not take {unknown}; give them to each member (teacher.members.NAME.KEY)"
        )
    for member in teacher.members.values():
        if isinstance(member, DictConfig) and member.get("name"):
            check_model_name(member.name)


def baseline_from_config(cfg: DictConfig, datamodule: Any, run_dir: Path) -> PreparedTeacher:
    """The student trained alone on the labels, on the student's budget: trained once, then cached."""
    epochs = cfg.trainer.max_epochs
    student = model_spec(cfg.student)
    return prepare_teacher(
        student.name,
        datamodule.num_classes,
        options=student.options,
        train=supervised_training(
            cfg, datamodule, run_dir, "baseline_training", epochs, cfg.optimizer, cfg.get("lr_scheduler"),
            phase=("baseline", f"student alone, the baseline ({student.name}"),
        ),
        cache=TeacherCache(Path(cfg.cache_dir).expanduser() / "baselines"),
        keep_dir=run_dir,
        spec=trained_first_spec(
            cfg, datamodule, model=student.name, epochs=epochs, optimizer=cfg.optimizer,
            lr_scheduler=cfg.get("lr_scheduler"), **_not_empty(options=student.options),
        ),
        role="baseline",
    )


def check_sample_indices_first(cfg: DictConfig, datamodule: Any, loss: dict[str, LossTerm]) -> None:
    """``teacher.cache=true`` and index-reading terms refused with their one line before the teacher trains:
    with a batch augmentation (``augment=``), with the data set's own random augmentation, with an unlabelled pool."""
    from distill.data.unlabeled import POOL_WITH_INDEX
    from distill.augment.batch_views import CACHE_WITH_BATCH_AUGMENT

    cache = bool(cfg.teacher.get("cache"))
    if cache and cfg.get("augment"):
        raise DistillError(CACHE_WITH_BATCH_AUGMENT)
    if cache:
        check_cacheable(datamodule)
    reads_index = cache or any(term.needs_index for term in loss.values())
    if reads_index and isinstance(datamodule, DistillDataModule) and datamodule.unlabeled is not None:
        raise DistillError(POOL_WITH_INDEX)


def teacher_outputs_from_config(
    cfg: DictConfig, datamodule: Any, teacher: nn.Module, loss: dict[str, LossTerm]
) -> TeacherOutputCache:
    """The teacher's outputs on the training split, from the cache (built now if missing): ``teacher.cache=true``."""
    check_cacheable(datamodule)  # no random augmentation, and the hooks the cache reads
    datamodule.with_index = True  # training batches are matched to cached rows by sample index
    key = {"teacher_sha256": weights_sha256(teacher), "data": datamodule.fingerprint(), "split": "train"}
    layers = [layer for term in loss.values() if term.needs_teacher for layer in term.teacher_layers]
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.get("accelerator") in ("auto", "gpu", "cuda") else "cpu"
    try:
        return TeacherOutputCache.open_or_build(
            Path(cfg.cache_dir).expanduser() / "teacher_outputs", key, teacher.to(device),
            datamodule.cache_dataloader(), layers=layers,
        )
    finally:
        teacher.to("cpu")


def check_feature_layers_first(cfg: DictConfig, datamodule: Any, student: nn.Module, loss: dict[str, LossTerm]) -> None:
    """The feature terms' layer names on the student and on the teacher's architecture, and one dry shape run
    on a validation batch, before the teacher is trained or loaded (ensembles and ``student_base`` are left to the run)."""
    from distill.checks.feature_layers import check_feature_layers, feature_terms

    if not feature_terms(loss) or is_ensemble(cfg.teacher) or is_student_base(cfg.teacher):
        return
    datamodule.prepare_data()
    datamodule.setup("fit")
    with torch.random.fork_rng(devices=[]):  # the teacher's training draws stay as they were (a loader draws a seed)
        teacher = model_spec(cfg.teacher).build(datamodule.num_classes)  # its architecture, fresh weights
        check_feature_layers(loss, student, teacher, next(iter(datamodule.val_dataloader())))
