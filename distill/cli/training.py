"""What a run trains with, from its config: the loss terms, the Trainer, its logger and callbacks."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, open_dict
from torch import nn

from distill.cli import console
from distill.errors import DistillError, first_line
from distill.install_hint import install_command
from distill.losses.base import LossTerm
from distill.supervised import SupervisedModule

log = logging.getLogger(__name__)


def loss_term(node: DictConfig) -> LossTerm:
    """Instantiate one loss term; its optional ``schedule:`` entry becomes its weight schedule."""
    node = node.copy()
    with open_dict(node):
        schedule = node.pop("schedule", None)
    term = instantiate(node)
    return term.scheduled(instantiate(schedule)) if schedule is not None else term


def loss_terms(loss: DictConfig) -> dict[str, LossTerm]:
    """Every term of a ``loss`` config (``~loss.NAME`` or ``loss.NAME=null`` removes one)."""
    return {name: loss_term(term) for name, term in loss.items() if term is not None}


def check_labels_for(loss: dict[str, LossTerm], cfg: DictConfig) -> None:
    """With ``data.labels=false`` a term that reads labels cannot work: say so before anything is trained."""
    if cfg.data.get("labels", True):
        return
    for name, term in loss.items():
        if term.needs_labels:
            raise DistillError(
                f"loss term '{name}' ({type(term).__name__}) needs labels, but data.labels=false trains "
                f"without them; remove it (~loss.{name}) or use label-free terms (e.g. loss=kd_pseudo_label)"
            )


def make_trainer(cfg: DictConfig, **options: Any) -> L.Trainer:
    """The configured Trainer; settings Lightning rejects (devices, accelerator) become one clear line."""
    verbose = console.is_verbose(cfg, HydraConfig.get().verbose if HydraConfig.initialized() else False)
    options = console.trainer_options(cfg.trainer, options, verbose)
    try:
        trainer = instantiate(cfg.trainer, **options)
    except InstantiationException as error:
        if "DeepSpeed installed" in str(error.__cause__):  # Lightning's DeepSpeedStrategy without the package
            raise DistillError(f"the DeepSpeed strategy needs the deepspeed package; {install_command('deepspeed')}") from None
        if isinstance(error.__cause__, (MisconfigurationException, ValueError, TypeError)):
            raise DistillError(
                f"the trainer settings do not work here: {first_line(error.__cause__)}; "
                "check trainer.accelerator, trainer.devices and trainer.precision"
            ) from None
        raise
    _check_strategy(trainer)
    return trainer


def _check_strategy(trainer: L.Trainer) -> None:
    """Lightning refuses DeepSpeed off CUDA only once ``fit`` has started (a traceback): say it now, in one line."""
    from lightning.pytorch.accelerators import CUDAAccelerator
    from lightning.pytorch.strategies import DeepSpeedStrategy

    if isinstance(trainer.strategy, DeepSpeedStrategy) and not isinstance(trainer.accelerator, CUDAAccelerator):
        raise DistillError(
            f"the DeepSpeed strategy runs on CUDA GPUs only (Lightning's rule), and this run's accelerator is "
            f"{type(trainer.accelerator).__name__.removesuffix('Accelerator').lower()}; on CPU use trainer=ddp "
            "trainer.accelerator=cpu"
        )


def make_callbacks(cfg: DictConfig) -> list[Any]:
    """The run's callbacks (``callbacks.NAME=null`` removes one)."""
    return [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]


def make_logger(cfg: DictConfig, resumed: bool) -> Any:
    """The configured logger; a resumed run logs into a new version so the first run's logs stay."""
    if not cfg.get("logger"):
        return False
    options = {}
    if resumed and "version" in cfg.logger:
        base = Path(cfg.logger.save_dir) / str(cfg.logger.get("name") or "")
        n = 1
        while (base / f"resumed-{n}").exists():
            n += 1
        options["version"] = f"resumed-{n}"
    if cfg.logger.get("_target_", "").endswith("WandbLogger") and not cfg.get("verbose") and "settings" not in cfg.logger:
        # the quiet console: no banner, no closing tables (verbose=true: all); a plain dict, as wandb.init reads it
        options.update(settings={"quiet": True}, _convert_="all")
    _check_logger_dir(cfg.logger.get("save_dir"))
    try:
        return instantiate(cfg.logger, **options)
    except InstantiationException as error:
        if isinstance(error.__cause__, ImportError):
            raise DistillError(
                f"the logger {cfg.logger._target_.rsplit('.', 1)[-1]} needs a package that is not installed "
                f"({first_line(error.__cause__)}); {install_command('loggers', _logger_package(cfg.logger._target_))} "
                "or use logger=csv"
            ) from None
        raise


def _check_logger_dir(save_dir: Any) -> None:
    """A local ``logger.save_dir`` is created now: one that cannot be is a line before any training, not a
    traceback from inside ``fit``. A URI (``s3://``, ``file:``, an MLflow server) is the logger's to reach."""
    if not isinstance(save_dir, str) or ":" in save_dir.split("/")[0]:
        return
    path = Path(save_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable, reason = os.access(path, os.W_OK | os.X_OK), "not writable"
    except OSError as error:
        writable, reason = False, error.strerror
    if not writable:
        raise DistillError(f"cannot write the logger's files to {path} ({reason}); set logger.save_dir to a writable directory")


def finish_loggers(trainer: L.Trainer) -> None:
    """End the loggers' runs that outlive ``Trainer.fit`` (Weights & Biases): each job of a sweep gets its own run,
    and its closing lines come now, plain, rather than at the interpreter's exit (in colour codes, after the report)."""
    for logger in trainer.loggers:
        experiment = getattr(logger, "_experiment", None)  # not started: nothing to end (never start one here)
        if type(logger).__name__ == "WandbLogger" and experiment is not None:
            offline = getattr(experiment.settings, "_offline", False)
            where = getattr(experiment.settings, "sync_dir", None)
            experiment.finish()
            logger._experiment = None
            if offline and where:
                log.info("Weights & Biases offline run: %s (wandb sync %s uploads it)", where, where)


#: the one package each optional logger needs (the loggers extra installs all three)
LOGGER_PACKAGES = {"TensorBoardLogger": "tensorboard", "MLFlowLogger": "mlflow", "WandbLogger": "wandb"}


def _logger_package(target: str) -> list[str] | None:
    package = LOGGER_PACKAGES.get(target.rsplit(".", 1)[-1])
    return [package] if package else None


def supervised_training(
    cfg: DictConfig, datamodule: Any, run_dir: Path, name: str, epochs: int, optimizer: Any, lr_scheduler: Any,
    phase: tuple[str, str] = ("train", "model"),
) -> Callable[[nn.Module], None]:
    """A function that trains a model on the labels, on the configured Trainer, logging under ``run_dir/name``.

    ``phase`` is the console's phase key and what is trained (``("teacher", "teacher (resnet50")``; the
    epochs are added).
    """

    def train(model: nn.Module) -> None:
        console.PHASES.enter(phase[0], f"training the {phase[1]}, {console.epochs(epochs)})")
        # one process on one device: under DDP this runs before the ranks are launched, and the
        # ranks started later find the trained model in the cache
        trainer = make_trainer(
            cfg,
            devices=1,
            num_nodes=1,
            strategy="auto",
            max_epochs=epochs,
            logger=L.pytorch.loggers.CSVLogger(run_dir, name=name, version=""),
            callbacks=[],
            enable_checkpointing=False,
        )
        module = SupervisedModule(
            model,
            optimizer=instantiate(optimizer),
            lr_scheduler=instantiate(lr_scheduler) if lr_scheduler else None,
        )
        trainer.fit(module, datamodule=datamodule)

    return train
