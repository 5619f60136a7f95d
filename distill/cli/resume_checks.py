"""Which checkpoint a run continues from, checked before anything trains; what to tell a user stopped by SIGTERM.

A run continues from the end-of-epoch ``checkpoints/last.ckpt`` (``resume=true``) or from
``ckpt_path=PATH``. The file must be a Lightning checkpoint of this student, and a run
that already trained all its epochs is finished: resuming it would only rewrite its outputs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import nn

from distill.errors import DistillError
from distill.models.checkpoint import read_checkpoint

log = logging.getLogger("distill")


def resume_checkpoint(cfg: DictConfig, run_dir: Path, student: nn.Module) -> Path | None:
    """The checkpoint to continue from (None: a fresh start), refused with one line when it cannot work."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path).expanduser()
        given = f"ckpt_path={cfg.ckpt_path}"
    elif cfg.get("resume"):
        path = run_dir / "checkpoints" / "last.ckpt"
        given = "resume=true"
        if not path.is_file():
            raise DistillError(
                f"resume=true but {path} does not exist; point hydra.run.dir at the run to continue "
                "(the directory that holds checkpoints/last.ckpt) or give ckpt_path=PATH"
            )
    else:
        return None
    content = read_checkpoint(path)
    check_lightning_checkpoint(content, path, given)
    check_same_student(content["state_dict"], student, path)
    epochs_done = epochs_completed(content)
    if epochs_done >= cfg.trainer.max_epochs:
        raise DistillError(
            f"{given}: {path} is a finished run ({epochs_done} of trainer.max_epochs={cfg.trainer.max_epochs} "
            f"epochs trained), nothing to continue and nothing was changed; to train longer add "
            f"trainer.max_epochs={epochs_done + 10} (more than {epochs_done})"
        )
    return path


def check_lightning_checkpoint(content: Any, path: Path, given: str) -> None:
    if not (isinstance(content, dict) and isinstance(content.get("state_dict"), dict) and "loops" in content):
        raise DistillError(
            f"{given}: {path} is not a Lightning checkpoint of a distill run (no training state: epoch, "
            "optimizer, loops); a plain state_dict cannot be resumed — give a teacher's weights as "
            "teacher.checkpoint=PATH, or resume from a run's checkpoints/last.ckpt"
        )


def check_same_student(state: dict[str, Any], student: nn.Module, path: Path) -> None:
    """The checkpoint's ``student.*`` entries must be this student's parameters and buffers, shape for shape."""
    saved = {k.removeprefix("student."): v for k, v in state.items() if k.startswith("student.")}
    expected = student.state_dict()
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    mismatched = [k for k, v in expected.items() if k in saved and tuple(saved[k].shape) != tuple(v.shape)]
    if missing or unexpected or mismatched:
        example = (mismatched or missing or unexpected)[0]
        raise DistillError(
            f"checkpoint {path} was written for another student ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} differently shaped entries, e.g. {example}); give the student "
            f"it was trained with ({type(student).__name__} here)"
        )


def epochs_completed(content: dict[str, Any]) -> int:
    """How many epochs the run had trained when it wrote this checkpoint."""
    try:
        return int(content["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(content.get("epoch", -1)) + 1


def sigterm_advice(run_dir: Path) -> str:
    """What works after a SIGTERM: resume from the kept end-of-epoch checkpoint, or start again."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        return (
            f"stopped by SIGTERM; the end-of-epoch checkpoint {last} is kept: resume=true "
            f"hydra.run.dir={run_dir} continues from it exactly (the unfinished epoch is trained again)"
        )
    return (
        "stopped by SIGTERM before the student finished its first epoch (e.g. while the teacher was "
        "trained): there is nothing to resume; run the same command again without resume=true "
        "(a teacher that finished training was cached and is reused)"
    )


def check_resumed_teacher(path: str | None, module: Any) -> None:
    """A checkpoint to resume from must have been trained against this teacher."""
    if path is None:
        return
    recorded = read_checkpoint(path).get("distill", {}).get("teacher_sha256")
    if recorded and recorded != module.teacher_sha256:
        raise DistillError(
            f"checkpoint {path} was trained against another teacher (weights sha256 {recorded[:12]}…, "
            f"this run's teacher is {module.teacher_sha256[:12]}…); give the same teacher settings to resume"
        )
    log.info("Resuming from %s", path)
