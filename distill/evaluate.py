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

The measuring itself is :func:`distill.evaluation.evaluate`, re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException, OverrideParseException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from distill.cli import console
from distill.cli_overrides import check_group_overrides
from distill.errors import DistillError
from distill.evaluation import ROLES, evaluate
from distill.models import build_model, check_model_name, load_weights
from distill.models.checkpoint import read_checkpoint
from distill.models.fingerprint import weights_sha256
from distill.models.torchvision_models import torchvision_model_names
from distill.report.table import print_report
from distill.run import (
    _extra,
    _check_teacher_names,
    _fail,
    _is_ensemble,
    _loss_term,
    _options,
    _prepare_teacher,
    _trained_first_spec,
    config_dir,
)
from distill.teachers import PreparedTeacher, TeacherCache, prepare_teacher

__all__ = [
    "SavedModel", "check_command_line", "cli", "command_line_keys", "data_config", "evaluate", "evaluate_saved",
    "find_run_config", "load_run_config", "load_saved_model", "load_teacher", "main",
]

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
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DistillError(f"run config {path} cannot be read ({first}); give model=NAME to evaluate the file without it") from None
    missing = [key for key in ("teacher", "student", "data", "loss") if not isinstance(cfg, DictConfig) or key not in cfg]
    if missing:
        raise DistillError(
            f"{path} is not the config of a distill run (it has no {', '.join(missing)}); "
            "give model=NAME to evaluate the file without it"
        )
    return cfg


def command_line_keys(overrides: Sequence[str]) -> dict[str, bool]:
    """The keys (and config groups) the command line set, each mapped to whether it deletes (``~key``)."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
    except OverrideParseException as error:
        raise DistillError(f"cannot read the command line: {error}") from None
    return {override.key_or_group: override.is_delete() for override in parsed}


def _apply_keys(node: DictConfig, cfg: DictConfig, prefix: str, keys: dict[str, bool]) -> None:
    """Copy the values the command line gave under ``prefix.`` from ``cfg`` into ``node``."""
    for key, delete in keys.items():
        if not key.startswith(prefix + "."):
            continue
        sub = key[len(prefix) + 1:]
        if delete:
            parent, _, leaf = sub.rpartition(".")
            container = OmegaConf.select(node, parent) if parent else node
            if isinstance(container, DictConfig):
                with open_dict(container):
                    container.pop(leaf, None)
        else:
            OmegaConf.update(node, sub, OmegaConf.select(cfg, key), merge=False, force_add=True)


def data_config(cfg: DictConfig, run_cfg: DictConfig | None, keys: dict[str, bool]) -> DictConfig:
    """The data to measure on: the run's, with the command line's ``data.*`` (and top-level ``image_size``/``channels``) on top.

    ``data=NAME`` on the command line, or no run config, takes this job's own ``data`` group instead.
    """
    if run_cfg is None or "data" in keys:
        node = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    else:
        node = OmegaConf.create(OmegaConf.to_container(run_cfg.data, resolve=True))
        _apply_keys(node, cfg, "data", keys)
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
    options = _options(run_cfg[role]) if run_cfg is not None and name == run_cfg[role].name else {}
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
    if saved.run_dir is not None and (saved.run_dir / "summary.json").is_file():
        try:
            recorded = json.loads((saved.run_dir / "summary.json").read_text())["teacher"]["sha256"]
        except (ValueError, KeyError, TypeError):
            recorded = None
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
    _apply_keys(run_cfg.teacher, cfg, "teacher", keys)
    if "cache_dir" in keys:
        run_cfg.cache_dir = cfg.cache_dir
    name = str(run_cfg.teacher.name)
    _check_teacher_names(run_cfg.teacher)
    teacher_data = instantiate(run_cfg.data)  # the run's own data: the cached teacher is keyed by it
    # (an ensemble's members are each looked up in the cache as the run did; its hash check below stays)
    given = _is_ensemble(run_cfg.teacher) or run_cfg.teacher.checkpoint or run_cfg.teacher.weights
    if not given and not cfg.get("train_teacher"):
        spec = _trained_first_spec(
            run_cfg, teacher_data, model=name, train=run_cfg.teacher.train, **_extra(options=_options(run_cfg.teacher))
        )
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
    prepared = _prepare_teacher(run_cfg, teacher_data, work_dir)

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
            loss = {name: _loss_term(term) for name, term in saved.run_cfg.loss.items() if term is not None}
            meta["loss"] = {name: repr(term) for name, term in loss.items()}
    return evaluate(
        saved.model, teacher, saved.datamodule, loss=loss, per_sample=bool(cfg.get("per_sample")), out_dir=out_dir,
        role=saved.role, names=names, device=device, meta=meta,
    )


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    console.quiet_libraries(console.is_verbose(cfg, HydraConfig.get().verbose))
    try:
        hydra_cfg = HydraConfig.get()
        out_dir = Path(cfg.out_dir).expanduser() if cfg.out_dir else Path(hydra_cfg.runtime.output_dir)
        result = evaluate_saved(cfg, hydra_cfg.overrides.task, out_dir)
    except (DistillError, InstantiationException) as error:
        cause = error if isinstance(error, DistillError) else error.__cause__
        if not isinstance(cause, DistillError) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(cause)
        return
    print_report(result)
    for name, value in result.get("losses", {}).items():
        print(f"loss/{name} (test-set mean, unweighted): {value:.6g}")
    print(f"evaluation written to {', '.join(result['files'].values())}", flush=True)


def check_command_line(argv: Sequence[str], command: str) -> None:
    """Fail early, in one line, on a missing ``checkpoint=`` or an unknown ``data=`` option."""
    if not any(arg.startswith(("checkpoint=", "-")) for arg in argv):
        raise DistillError(f"give the file to read: python -m {command} checkpoint=outputs/<date>/<time>/checkpoints/best.ckpt")
    data = [arg for arg in argv if arg.partition("=")[0].removeprefix("override ") == "data"]
    check_group_overrides(data, config_dir(), torchvision_model_names)


def cli() -> None:
    """``python -m distill.evaluate``."""
    try:
        check_command_line(sys.argv[1:], "distill.evaluate")
    except DistillError as error:
        _fail(error)
    main()


if __name__ == "__main__":
    cli()
