"""The main job: ``python -m distill.run teacher=resnet50 student=resnet18 loss=kd data=digits``.

Composes the config with Hydra, gets the teacher (checkpoint, pretrained
weights, or trained first and cached), distils it into the student with
Lightning's Trainer, tests both and writes a summary into the run directory.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import (
    MisconfigurationException,
    SIGTERMException,
)
from omegaconf import DictConfig, OmegaConf, open_dict
import torch
from omegaconf.errors import MissingMandatoryValue
from torch import nn

from distill.checkpoint_io import AtomicCheckpointIO
from distill.cli import console
from distill.cli.key_check import check_loss_order, check_override_keys
from distill.cli_overrides import check_group_overrides, check_output_dir
from distill.errors import DistillError
from distill.install_hint import install_command
from distill.io import atomic_torch_save, atomic_write_text
from distill.models import build_model, check_model_name, weights_sha256
from distill.models.factory import model_options
from distill.models.checkpoint import read_checkpoint
from distill.models.torchvision_models import torchvision_model_names
from distill.module import DistillationModule
from distill.report.assemble import distillation_report
from distill.report.table import print_report
from distill.summary import write_summary
from distill.supervised import SupervisedModule
from distill.teachers import PreparedTeacher, TeacherCache, TeacherEnsemble, TeacherOutputCache, prepare_teacher

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
    console.PHASES.begin(3 + bool(cfg.get("baseline")), run_dir)
    L.seed_everything(cfg.seed, workers=True)
    # everything that can be wrong in the config fails here, before any training
    datamodule = instantiate(cfg.data)
    num_classes = datamodule.num_classes
    loss = {name: _loss_term(term) for name, term in cfg.loss.items() if term is not None}
    _check_labels_for(loss, cfg)
    _check_teacher_names(cfg.teacher)
    check_model_name(cfg.student.name)
    _make_trainer(cfg, logger=False, callbacks=[], enable_checkpointing=False)  # trainer settings
    if any(term.needs_index for term in loss.values()) and not getattr(datamodule, "with_index", True):
        log.info("A loss term reads sample indices: the data module adds them to each batch")
        datamodule.with_index = True

    teacher = _prepare_teacher(cfg, datamodule, run_dir)
    console.PHASES.enter_once("teacher", f"teacher {cfg.teacher.name}: {teacher.source}")
    teacher_outputs = _teacher_outputs(cfg, datamodule, teacher.model, loss) if cfg.teacher.get("cache") else None
    # seed again so the student starts the same whether the teacher was trained now or loaded
    L.seed_everything(cfg.seed, workers=True)
    student = build_model(cfg.student.name, num_classes, **_options(cfg.student))
    if cfg.get("channels_last"):
        for model in (student, teacher.model):
            model.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        student.compile()  # in place: parameter names, hooks and checkpoints stay as they are
    module = DistillationModule(
        student,
        teacher.model,
        loss,
        optimizer=instantiate(cfg.optimizer),
        lr_scheduler=instantiate(cfg.lr_scheduler) if cfg.get("lr_scheduler") else None,
        teacher_source=teacher.source,
        log_grad_norms=bool(cfg.get("log_grad_norms", False)),
        teacher_outputs=teacher_outputs,
        teacher_dtype=cfg.teacher.get("dtype"),
    )
    resume_from = _resume_from(cfg, run_dir, module)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    trainer = _make_trainer(cfg, callbacks=callbacks, logger=_logger(cfg, resume_from), plugins=[AtomicCheckpointIO()])
    terms = " + ".join(f"{name} ×{term.weight:g}" if isinstance(getattr(term, "weight", None), (int, float)) else name for name, term in loss.items())
    console.PHASES.enter("distill", f"distilling {cfg.teacher.name} into {cfg.student.name} ({console.epochs(cfg.trainer.max_epochs)}, loss {terms})")
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)

    best = _best_checkpoint(trainer)
    # loads the best student and logs its test metrics next to the training curves
    trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    if not trainer.is_global_zero:
        return {}  # under DDP, rank 0 writes the weights, the report and the summary
    weights_path = atomic_torch_save(module.student.state_dict(), run_dir / "student.pt")

    models = {"teacher": (cfg.teacher.name, module.teacher_as_run), "student": (cfg.student.name, module.student)}
    if cfg.get("baseline"):
        L.seed_everything(cfg.seed, workers=True)
        baseline = _prepare_baseline(cfg, datamodule, run_dir)
        console.PHASES.enter_once("baseline", f"baseline {cfg.student.name}: {baseline.source}")
        models["baseline"] = (cfg.student.name, baseline.model)
    log_dir = getattr(trainer.logger, "log_dir", None)  # None for loggers that keep no local folder
    metrics_csv = Path(log_dir) / "metrics.csv" if log_dir else None
    loss_terms = {name: repr(term) for name, term in module.loss_terms.items()}
    # hashed when the module was built and again now: equal, or on_fit_end would have failed
    teacher_hashes = {"teacher_sha256_before": module.teacher_sha256, "teacher_sha256_after": weights_sha256(teacher.model)}
    latency = cfg.get("report", {}).get("latency", "full")
    measured = "accuracy, calibration" + (", CPU latency" if latency != "off" else "")
    console.PHASES.enter("measure", f"measuring the {', the '.join(models)} on the test set ({measured})")
    with console.measuring_bar(cfg.trainer.get("enable_progress_bar", True)) as progress:
        report = distillation_report(
            models, datamodule.test_dataloader(), run_dir, metrics_csv,
            meta={"data": cfg.data._target_.rsplit(".", 1)[-1], "loss": loss_terms, "run_dir": str(run_dir), **teacher_hashes},
            latency=latency, progress=progress,
        )
    rows = {row["role"]: row for row in report["rows"]}
    summary = {
        "teacher": {
            "name": cfg.teacher.name,
            "source": teacher.source,
            "origin": teacher.origin,
            "test_accuracy": rows["teacher"]["accuracy"],
            "parameters": rows["teacher"]["parameters"],
            "sha256": teacher_hashes["teacher_sha256_before"],
            "sha256_after": teacher_hashes["teacher_sha256_after"],
        },
        "student": {
            "name": cfg.student.name,
            "test_accuracy": rows["student"]["accuracy"],
            "parameters": rows["student"]["parameters"],
            "checkpoint": best or None,
            "best_val_accuracy": _best_score(trainer),
            "weights": str(weights_path),
        },
        "agreement": rows["student"]["agreement"],
        "loss": loss_terms,
        "seconds": time.perf_counter() - started,
        "run_dir": str(run_dir),
        "logs": log_dir,
        "report": {"json": str(run_dir / "report.json"), "markdown": str(run_dir / "report.md"), **report["figures"]},
    }
    if "baseline" in rows:
        summary["baseline"] = {"name": cfg.student.name, "test_accuracy": rows["baseline"]["accuracy"]}
        if rows["baseline"]["accuracy"] is not None and rows["student"]["accuracy"] is not None:
            summary["kd_vs_alone_points"] = 100 * (rows["student"]["accuracy"] - rows["baseline"]["accuracy"])
    summary["warnings"] = report["warnings"]
    write_summary(summary, run_dir)
    print_report(report)
    console.say(console.pointers(summary))
    return summary


def _teacher_outputs(cfg: DictConfig, datamodule: Any, teacher: nn.Module, loss: dict[str, Any]) -> TeacherOutputCache:
    """The teacher's outputs on the training split, from the cache (built now if missing)."""
    if getattr(datamodule, "random_augmentation", False):
        raise DistillError(
            "teacher.cache=true needs the teacher to see the same training inputs every epoch, but the data "
            "module applies random augmentation; set data.augment=false or teacher.cache=false"
        )
    for method in ("cache_dataloader", "fingerprint"):
        if not callable(getattr(datamodule, method, None)):
            raise DistillError(
                f"teacher.cache=true needs the data module to have {method}() "
                f"({type(datamodule).__name__} has not); set teacher.cache=false"
            )
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


def _resume_from(cfg: DictConfig, run_dir: Path, module: DistillationModule) -> str | None:
    """The checkpoint to continue from, checked to belong to this teacher; None for a fresh start."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path).expanduser()
    elif cfg.get("resume"):
        path = run_dir / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise DistillError(
                f"resume=true but {path} does not exist; point hydra.run.dir at the run to continue "
                "(the directory that holds checkpoints/last.ckpt) or give ckpt_path=PATH"
            )
    else:
        return None
    recorded = read_checkpoint(path).get("distill", {}).get("teacher_sha256")
    if recorded and recorded != module.teacher_sha256:
        raise DistillError(
            f"checkpoint {path} was trained against another teacher (weights sha256 {recorded[:12]}…, "
            f"this run's teacher is {module.teacher_sha256[:12]}…); give the same teacher settings to resume"
        )
    log.info("Resuming from %s", path)
    return str(path)


def _make_trainer(cfg: DictConfig, **options: Any) -> L.Trainer:
    """The configured Trainer; settings Lightning rejects (devices, accelerator) become one clear line."""
    options = console.trainer_options(cfg.trainer, options, _verbose(cfg))
    try:
        return instantiate(cfg.trainer, **options)
    except InstantiationException as error:
        if isinstance(error.__cause__, (MisconfigurationException, ValueError, TypeError)):
            raise DistillError(
                f"the trainer settings do not work here: {_first_line(error.__cause__)}; "
                "check trainer.accelerator, trainer.devices and trainer.precision"
            ) from None
        raise


def _best_checkpoint(trainer: L.Trainer) -> str:
    """The path of the best checkpoint by the monitored metric ("" when there is none)."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor and callback.best_model_path:
            return callback.best_model_path
    return ""


def _best_score(trainer: L.Trainer) -> float | None:
    """The best value of the monitored validation metric (val/acc), None when nothing was monitored."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor and callback.best_model_score is not None:
            return float(callback.best_model_score)
    return None


def _logger(cfg: DictConfig, resume_from: str | None) -> Any:
    """The configured logger; a resumed run logs into a new version so the first run's logs stay."""
    if not cfg.get("logger"):
        return False
    options = {}
    if resume_from is not None and "version" in cfg.logger:
        base = Path(cfg.logger.save_dir) / str(cfg.logger.get("name") or "")
        n = 1
        while (base / f"resumed-{n}").exists():
            n += 1
        options["version"] = f"resumed-{n}"
    try:
        return instantiate(cfg.logger, **options)
    except InstantiationException as error:
        if isinstance(error.__cause__, ImportError):
            raise DistillError(
                f"the logger {cfg.logger._target_.rsplit('.', 1)[-1]} needs a package that is not installed "
                f"({_first_line(error.__cause__)}); {install_command('loggers')} or use logger=csv"
            ) from None
        raise


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
    "default_root_dir", "callbacks", "logger", "devices", "num_nodes", "strategy", "sync_batchnorm",
    "with_index", "download",
}


def _without(node: DictConfig, keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in keys}


def _trained_first_spec(
    cfg: DictConfig, datamodule: Any, data: DictConfig | None = None, **what: Any
) -> dict[str, Any]:
    """Everything that determines a model distill trains itself, so a different setting never reuses it.

    ``data`` is the config of the data it is trained on, when not ``cfg.data`` (an ensemble member's own view).
    """
    return {
        "num_classes": datamodule.num_classes,
        "data": _without(cfg.data if data is None else data, _NOT_IN_TEACHER_KEY),
        "trainer": _without(cfg.trainer, _NOT_IN_TEACHER_KEY),
        "seed": cfg.seed,
        **{k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v for k, v in what.items()},
    }


def _supervised_training(
    cfg: DictConfig, datamodule: Any, run_dir: Path, name: str, epochs: int, optimizer: Any, lr_scheduler: Any,
    phase: tuple[str, str] = ("train", "model"),
) -> Callable[[nn.Module], None]:
    """A function that trains a model on the labels, on the configured Trainer, logging under ``run_dir/name``.

    ``phase`` is the console's phase key and what is trained (``("teacher", "teacher (resnet50")``, the
    epochs are added).
    """

    def train(model: nn.Module) -> None:
        console.PHASES.enter(phase[0], f"training the {phase[1]}, {console.epochs(epochs)})")
        # one process on one device: under DDP this runs before the ranks are launched, and the
        # ranks started later find the trained model in the cache
        trainer = _make_trainer(
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


def _options(model_config: DictConfig) -> dict[str, Any]:
    return model_options(OmegaConf.to_container(model_config, resolve=True))


def _extra(**entries: Any) -> dict[str, Any]:
    """Entries that are not empty: a spec without options stays the same key as before they existed."""
    return {k: v for k, v in entries.items() if v}


def _prepare_teacher(cfg: DictConfig, datamodule: Any, run_dir: Path) -> PreparedTeacher:
    if not _is_ensemble(cfg.teacher):
        return _prepare_one_teacher(cfg, cfg.teacher, datamodule, None, run_dir, "teacher_training")
    prepared = {}
    for name, member in cfg.teacher.members.items():
        member, data = _member_config(cfg, name, member)
        member_data = datamodule if data is None else instantiate(data)
        prepared[name] = _prepare_one_teacher(cfg, member, member_data, data, run_dir, f"teacher_training_{name}")
    ensemble = TeacherEnsemble(
        {name: p.model for name, p in prepared.items()},
        combine=cfg.teacher.combine,
        weights=OmegaConf.to_container(cfg.teacher.member_weights) if cfg.teacher.get("member_weights") else None,
        temperature=cfg.teacher.get("temperature", 1.0),
    )
    origins = dict.fromkeys(p.origin for p in prepared.values())
    source = f"ensemble ({cfg.teacher.combine}) of " + "; ".join(f"{n}: {p.source}" for n, p in prepared.items())
    return PreparedTeacher(ensemble, "+".join(origins), source)


def _prepare_one_teacher(
    cfg: DictConfig, teacher: DictConfig, datamodule: Any, data: DictConfig | None, run_dir: Path, log_name: str
) -> PreparedTeacher:
    """One teacher (or ensemble member) described by ``teacher``, trained first on ``datamodule`` if need be."""
    given = teacher.checkpoint or teacher.weights
    if not given and not (cfg.data if data is None else data).get("labels", True):
        raise DistillError(
            f"teacher {teacher.name} would be trained first, which needs labels, but data.labels=false; "
            "give teacher.checkpoint=PATH (e.g. a teacher cached by a run with labels) or teacher.weights=NAME"
        )
    schedule = teacher.train
    return prepare_teacher(
        teacher.name,
        datamodule.num_classes,
        checkpoint=teacher.checkpoint,
        weights=teacher.weights,
        trusted_checkpoint=bool(teacher.get("trusted_checkpoint", False)),
        options=_options(teacher),
        train=_supervised_training(
            cfg, datamodule, run_dir, log_name, schedule.epochs, schedule.optimizer, schedule.get("lr_scheduler"),
            phase=("teacher", f"teacher ({teacher.name}"),
        ),
        cache=None if given else TeacherCache(Path(cfg.cache_dir).expanduser() / "teachers"),
        spec=None if given else _trained_first_spec(
            cfg, datamodule, data, model=teacher.name, train=schedule, **_extra(options=_options(teacher))
        ),
    )


#: keys of teacher=ensemble's config that describe the ensemble, not a model
_ENSEMBLE_KEYS = {"name", "members", "combine", "member_weights", "temperature", "train"}


def _is_ensemble(teacher: DictConfig) -> bool:
    return teacher.get("members") is not None


def _member_config(cfg: DictConfig, name: str, member: Any) -> tuple[DictConfig, DictConfig | None]:
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


def _check_teacher_names(teacher: DictConfig) -> None:
    if not _is_ensemble(teacher):
        check_model_name(teacher.name)
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


def _check_labels_for(loss: dict[str, Any], cfg: DictConfig) -> None:
    """With ``data.labels=false`` a term that reads labels cannot work: say so before anything is trained."""
    if cfg.data.get("labels", True):
        return
    for name, term in loss.items():
        if term.needs_labels:
            raise DistillError(
                f"loss term '{name}' ({type(term).__name__}) needs labels, but data.labels=false trains "
                f"without them; remove it (~loss.{name}) or use label-free terms (e.g. loss=kd_pseudo_label)"
            )


def _prepare_baseline(cfg: DictConfig, datamodule: Any, run_dir: Path) -> PreparedTeacher:
    """The student trained alone on the labels, on the student's budget: trained once, then cached."""
    epochs = cfg.trainer.max_epochs
    return prepare_teacher(
        cfg.student.name,
        datamodule.num_classes,
        options=_options(cfg.student),
        train=_supervised_training(
            cfg, datamodule, run_dir, "baseline_training", epochs, cfg.optimizer, cfg.get("lr_scheduler"),
            phase=("baseline", f"student alone, the baseline ({cfg.student.name}"),
        ),
        cache=TeacherCache(Path(cfg.cache_dir).expanduser() / "baselines"),
        spec=_trained_first_spec(
            cfg, datamodule, model=cfg.student.name, epochs=epochs, optimizer=cfg.optimizer,
            lr_scheduler=cfg.get("lr_scheduler"), **_extra(options=_options(cfg.student)),
        ),
        role="baseline",
    )


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    console.quiet_libraries(_verbose(cfg))
    try:
        summary = run(cfg)
    except SIGTERMException:
        print("stopped by SIGTERM; resume with resume=true in the same run directory", file=sys.stderr)
        sys.exit(143)
    except MissingMandatoryValue as error:  # a ??? in the config that the command line did not fill
        _fail(DistillError(f"{error.full_key} is not set; give {error.full_key}=... on the command line"))
    except (DistillError, InstantiationException) as error:
        cause = error if isinstance(error, DistillError) else error.__cause__
        if not isinstance(cause, DistillError) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # one bad job of a sweep: record it for the sweep summary and let the others run
            run_dir = Path(HydraConfig.get().runtime.output_dir)
            atomic_write_text(run_dir / "failed.json", json.dumps({"error": str(cause)}) + "\n")
            print(f"error: {cause}", file=sys.stderr, flush=True)
            return float("nan") if cfg.get("optimized_metric") else None  # a failed trial for a sweeper
        _fail(cause)
    return _optimized_metric(summary, cfg.get("optimized_metric"))


def _optimized_metric(summary: dict[str, Any], path: str | None) -> float | None:
    """The value a hyper-parameter sweeper maximises: the summary entry at dotted ``path``."""
    if not path or not summary:  # no sweeper, or a DDP rank other than 0
        return None
    value: Any = summary
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DistillError(f"optimized_metric={path}: the run summary has no entry '{part}'")
        value = value[part]
    return float(value)


def _verbose(cfg: DictConfig) -> bool:
    return console.is_verbose(cfg, HydraConfig.get().verbose if HydraConfig.initialized() else False)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _fail(error: DistillError) -> None:
    sys.stdout.flush()
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(2)


def cli() -> None:
    """Console entry point (``distill-run``) and ``python -m distill.run``."""
    # Lightning's own deprecation notice about torch internals, printed at every step otherwise
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    try:
        sys.argv[1:] = check_group_overrides(sys.argv[1:], config_dir(), torchvision_model_names)
        check_loss_order(sys.argv[1:], config_dir())
        check_override_keys(sys.argv[1:], config_dir())
        check_output_dir(sys.argv[1:])
    except DistillError as error:
        _fail(error)
    main()


if __name__ == "__main__":
    cli()
