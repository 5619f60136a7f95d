"""The main job: ``python -m distill.run teacher=resnet50 student=resnet18 loss=kd data=digits``.

Composes the config with Hydra, gets the teacher (checkpoint, pretrained
weights, or trained first and cached), distils it into the student with
Lightning's Trainer, tests both and writes a summary into the run directory.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from distill.cli_overrides import check_group_overrides
from distill.errors import DistillError
from distill.io import atomic_torch_save
from distill.models import build_model, check_model_name, count_parameters
from distill.models.torchvision_models import torchvision_model_names
from distill.module import DistillationModule
from distill.summary import summary_markdown, write_summary
from distill.supervised import SupervisedModule
from distill.teachers import PreparedTeacher, TeacherCache, prepare_teacher

log = logging.getLogger("distill")


def config_dir() -> Path:
    """``conf/`` inside the installed package (wheel), else beside it (source checkout)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"distill's conf/ directory is missing (looked in {package} and {package.parent})")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run one distillation job described by ``cfg``; return its summary."""
    started = time.perf_counter()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    # everything that can be wrong in the config fails here, before any training
    datamodule = instantiate(cfg.data)
    num_classes = datamodule.num_classes
    loss = {name: _loss_term(term) for name, term in cfg.loss.items() if term is not None}
    check_model_name(cfg.teacher.name)
    check_model_name(cfg.student.name)

    teacher = _prepare_teacher(cfg, datamodule, run_dir)
    # seed again so the student starts the same whether the teacher was trained now or loaded
    L.seed_everything(cfg.seed, workers=True)
    student = build_model(cfg.student.name, num_classes)
    module = DistillationModule(
        student,
        teacher.model,
        loss,
        optimizer=instantiate(cfg.optimizer),
        lr_scheduler=instantiate(cfg.lr_scheduler) if cfg.get("lr_scheduler") else None,
        teacher_source=teacher.source,
    )
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=instantiate(cfg.logger) if cfg.get("logger") else False
    )
    trainer.fit(module, datamodule=datamodule)

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)[0]
    weights_path = atomic_torch_save(module.student.state_dict(), run_dir / "student.pt")

    summary = {
        "teacher": {
            "name": cfg.teacher.name,
            "source": teacher.source,
            "origin": teacher.origin,
            "test_accuracy": results.get("test/teacher_acc"),
            "parameters": count_parameters(teacher.model),
            "sha256": module.teacher_sha256,
        },
        "student": {
            "name": cfg.student.name,
            "test_accuracy": results.get("test/acc"),
            "parameters": count_parameters(student),
            "checkpoint": best or None,
            "weights": str(weights_path),
        },
        "agreement": results.get("test/agreement"),
        "loss": {name: repr(term) for name, term in module.loss_terms.items()},
        "seconds": time.perf_counter() - started,
        "run_dir": str(run_dir),
        "logs": trainer.logger.log_dir if trainer.logger else None,
    }
    write_summary(summary, run_dir)
    print("\n" + summary_markdown(summary), flush=True)
    return summary


def _loss_term(node: DictConfig) -> Any:
    """Instantiate one loss term; its optional ``schedule:`` entry becomes its weight schedule."""
    node = node.copy()
    with open_dict(node):
        schedule = node.pop("schedule", None)
    term = instantiate(node)
    return term.scheduled(instantiate(schedule)) if schedule is not None else term


# settings that do not change the trained teacher, so changing them reuses it
_NOT_IN_TEACHER_KEY = {
    "num_workers", "max_epochs", "log_every_n_steps", "enable_progress_bar", "enable_model_summary",
    "default_root_dir", "callbacks", "logger",
}


def _without(node: DictConfig, keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in keys}


def _prepare_teacher(cfg: DictConfig, datamodule: L.LightningDataModule, run_dir: Path) -> PreparedTeacher:
    spec = None
    if not cfg.teacher.checkpoint and not cfg.teacher.weights:
        # everything that determines the trained teacher, so a different setting never reuses it
        spec = {
            "model": cfg.teacher.name,
            "num_classes": datamodule.num_classes,
            "data": _without(cfg.data, _NOT_IN_TEACHER_KEY),
            "train": OmegaConf.to_container(cfg.teacher.train, resolve=True),
            "trainer": _without(cfg.trainer, _NOT_IN_TEACHER_KEY),
            "seed": cfg.seed,
        }

    def train(model):
        trainer = instantiate(
            cfg.trainer,
            max_epochs=cfg.teacher.train.epochs,
            logger=L.pytorch.loggers.CSVLogger(run_dir, name="teacher_training", version=""),
            callbacks=[],
            enable_checkpointing=False,
        )
        module = SupervisedModule(
            model,
            optimizer=instantiate(cfg.teacher.train.optimizer),
            lr_scheduler=instantiate(cfg.teacher.train.lr_scheduler) if cfg.teacher.train.get("lr_scheduler") else None,
        )
        trainer.fit(module, datamodule=datamodule)

    return prepare_teacher(
        cfg.teacher.name,
        datamodule.num_classes,
        checkpoint=cfg.teacher.checkpoint,
        weights=cfg.teacher.weights,
        train=train,
        cache=TeacherCache(Path(cfg.cache_dir).expanduser() / "teachers") if spec else None,
        spec=spec,
    )


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (DistillError, InstantiationException) as error:
        cause = error if isinstance(error, DistillError) else error.__cause__
        if not isinstance(cause, DistillError) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(cause)


def _fail(error: DistillError) -> None:
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(2)


def cli() -> None:
    """Console entry point (``distill-run``) and ``python -m distill.run``."""
    try:
        sys.argv[1:] = check_group_overrides(sys.argv[1:], config_dir(), torchvision_model_names)
    except DistillError as error:
        _fail(error)
    main()


if __name__ == "__main__":
    cli()
