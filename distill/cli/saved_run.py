"""A saved run rebuilt for ``distill.evaluate`` and ``distill.export``: its model, data and teacher.

A checkpoint inside a run directory (``<run>/checkpoints/best.ckpt``, ``<run>/student.pt``)
brings the run's composed config (``<run>/.hydra/config.yaml``); the command line's
``data.*``, ``teacher.*`` and ``model=`` replace what it says.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from distill.cli.overrides import apply_keys
from distill.cli.teachers import check_teacher_names, is_ensemble, model_spec, teacher_from_config, teacher_spec
from distill.errors import DistillError, first_line
from distill.models import build_model, check_model_name, load_weights
from distill.models.checkpoint import read_checkpoint
from distill.models.fingerprint import weights_sha256
from distill.report.evaluation_report import ROLES
from distill.report.run_summary import summary_teacher
from distill.teachers import PreparedTeacher, TeacherCache, prepare_teacher

log = logging.getLogger("distill")

@dataclass
class SavedModel:
    """A model rebuilt from a checkpoint file, with what its run directory says about it."""

    name: str
    role: str
    num_classes: int
    model: nn.Module
    #: the data module to measure it on (the run's data with the command line's data.* on top)
    datamodule: Any
    checkpoint: Path
    #: what ``torch.load(weights_only=True)`` read from the checkpoint
    content: Any
    #: the run directory and its composed config, when the checkpoint lies in one
    run_dir: Path | None
    run_cfg: DictConfig | None
    #: the builder options of the run's model config (e.g. a Hugging Face model's path)
    options: dict[str, Any] = field(default_factory=dict)


def find_run_config(checkpoint: str | os.PathLike) -> Path | None:
    """The ``.hydra/config.yaml`` of the run that wrote ``checkpoint``, or ``None``.

    ``<run>/checkpoints/best.ckpt`` and ``<run>/student.pt`` both lead to
    ``<run>/.hydra/config.yaml``.
    """
    checkpoint = Path(checkpoint).expanduser().resolve()
    for directory in (checkpoint.parent, checkpoint.parent.parent):
        candidate = directory / ".hydra" / "config.yaml"
        if candidate.is_file():
            return candidate
    return None


def load_run_config(path: Path) -> DictConfig:
    """Read a run's composed config, checking that it is one of distill's."""
    try:
        cfg = OmegaConf.load(path)
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException) as error:
        raise DistillError(f"run config {path} cannot be read ({first_line(error)}); give model=NAME to evaluate the file without it") from None
    missing = [key for key in ("teacher", "student", "data", "loss") if not isinstance(cfg, DictConfig) or key not in cfg]
    if missing:
        raise DistillError(
            f"{path} is not the config of a distill run (it has no {', '.join(missing)}); "
            "give model=NAME to evaluate the file without it"
        )
    return cfg


def data_config(cfg: DictConfig, run_cfg: DictConfig | None, keys: dict[str, bool]) -> DictConfig:
    """The data to measure on: the run's, with the command line's ``data.*`` (and top-level ``image_size``/``channels``) on top.

    ``data=NAME`` on the command line, or no run config, takes this job's own ``data`` group instead.
    """
    if run_cfg is None or "data" in keys:
        node = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    else:
        node = OmegaConf.create(OmegaConf.to_container(run_cfg.data, resolve=True))
        apply_keys(node, cfg, "data", keys)
    for key in ("image_size", "channels"):
        if cfg.get(key) is not None:
            node[key] = cfg[key]
    return node


def load_saved_model(cfg: DictConfig, keys: dict[str, bool]) -> SavedModel:
    """Rebuild the model in ``cfg.checkpoint`` from its run's config (or from ``model=``, ``num_classes=``)."""
    role = str(cfg.get("role") or "student")
    if role not in ROLES:
        raise DistillError(f"role must be one of {', '.join(ROLES)}, got '{role}'")
    checkpoint = Path(str(cfg.checkpoint)).expanduser()
    content = read_checkpoint(checkpoint)  # a missing, empty or corrupt file fails here, first
    config_path = find_run_config(checkpoint)
    run_cfg = load_run_config(config_path) if config_path is not None else None
    if run_cfg is None and not cfg.get("model"):
        raise DistillError(
            f"{checkpoint} is not inside a run directory (found no .hydra/config.yaml in "
            f"{checkpoint.resolve().parent} or its parent), so its model is unknown; give model=NAME "
            "(and data.*=..., num_classes=N when they differ from conf/data/digits.yaml)"
        )
    name = str(cfg.get("model") or run_cfg[role].name)
    check_model_name(name)
    datamodule = instantiate(data_config(cfg, run_cfg, keys))
    num_classes = cfg.get("num_classes")
    if num_classes is None:
        num_classes = getattr(datamodule, "num_classes", None)
        if num_classes is None:
            raise DistillError(f"{type(datamodule).__name__} does not say how many classes it has; give num_classes=N")
    # the run's model options (a Hugging Face model's directory, ...), unless model= names another model
    options = model_spec(run_cfg[role]).options if run_cfg is not None and name == run_cfg[role].name else {}
    model = load_weights(build_model(name, int(num_classes), **options), checkpoint)
    return SavedModel(
        name=name, role=role, num_classes=int(num_classes), model=model, datamodule=datamodule,
        checkpoint=checkpoint, content=content,
        run_dir=config_path.parent.parent if config_path is not None else None, run_cfg=run_cfg, options=options,
    )


def _recorded_teacher(saved: SavedModel) -> tuple[str | None, str]:
    """The sha256 of the teacher the run distilled from, and where it is recorded."""
    content = saved.content
    if isinstance(content, dict) and isinstance(content.get("distill"), dict):
        recorded = content["distill"].get("teacher_sha256")
        if recorded:
            return str(recorded), f"checkpoint {saved.checkpoint}"
    recorded = (summary_teacher(saved.run_dir) or {}).get("sha256")
    if recorded:
        return str(recorded), f"{saved.run_dir / 'summary.json'}"
    return None, ""


def load_teacher(cfg: DictConfig, saved: SavedModel, keys: dict[str, bool], work_dir: Path) -> tuple[str, PreparedTeacher]:
    """The teacher of the run that wrote ``saved``, obtained as that run obtained it; its name and how it was found."""
    overridden = any(key == "teacher" or key.startswith("teacher.") for key in keys)
    if saved.run_cfg is None:
        teacher = cfg.teacher
        if not teacher.get("name"):
            raise DistillError(
                f"{saved.checkpoint} is not inside a run directory, so its teacher is unknown; give "
                "teacher.name=NAME with teacher.checkpoint=PATH or teacher.weights=DEFAULT, or role=teacher "
                "to measure the model alone"
            )
        check_model_name(teacher.name)
        prepared = prepare_teacher(
            teacher.name, saved.num_classes, checkpoint=teacher.get("checkpoint"), weights=teacher.get("weights")
        )
        return str(teacher.name), prepared

    run_cfg = saved.run_cfg
    apply_keys(run_cfg.teacher, cfg, "teacher", keys)
    if "cache_dir" in keys:
        run_cfg.cache_dir = cfg.cache_dir
    name = str(run_cfg.teacher.name)
    check_teacher_names(run_cfg.teacher)
    teacher_data = instantiate(run_cfg.data)  # the run's own data: the cached teacher is keyed by it
    # (an ensemble's members are each looked up in the cache as the run did; its hash check below stays)
    given = is_ensemble(run_cfg.teacher) or run_cfg.teacher.checkpoint or run_cfg.teacher.weights
    if not given and not cfg.get("train_teacher"):
        spec = teacher_spec(run_cfg, run_cfg.teacher, teacher_data)
        cache_root = Path(str(run_cfg.cache_dir)).expanduser() / "teachers"
        path = TeacherCache(cache_root).path(name, spec)
        if not path.is_file():
            raise DistillError(
                f"the run's teacher ({name}, trained by distill) is not in the cache: {path} does not exist; "
                "give cache_dir=DIR (or DISTILL_CACHE_DIR) where the run cached it, teacher.checkpoint=PATH, "
                "or train_teacher=true to train it again with the run's settings"
            )
    if cfg.get("train_teacher"):
        # seeded as the run seeded it: with the same settings and hardware it trains the same teacher
        L.seed_everything(run_cfg.seed, workers=True)
    prepared = teacher_from_config(run_cfg, teacher_data, work_dir)

    recorded, where = _recorded_teacher(saved)
    found = weights_sha256(prepared.model)
    if recorded and recorded != found:
        message = (
            f"the teacher found ({prepared.source}) is not the one the run distilled from: its weights' "
            f"sha256 is {found[:12]}…, {where} records {recorded[:12]}…"
        )
        if not (overridden or cfg.get("train_teacher")):
            raise DistillError(
                message + "; give teacher.checkpoint=PATH of the run's teacher (or of this one, to compare with it anyway)"
            )
        log.warning("%s; agreement and loss values compare with this other teacher", message)
    return name, prepared
