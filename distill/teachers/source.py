"""Where the teacher comes from: a checkpoint, pretrained weights, or training it first (cached)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from distill.errors import DistillError
from distill.io import DiskFullError, atomic_torch_save
from distill.models.checkpoint import load_weights
from distill.models.factory import build_model
from distill.models.finite import non_finite_entries
from distill.teachers.cache import TeacherCache

log = logging.getLogger(__name__)
#: marks a log record that the command line's phase line already says ("[1/3] teacher resnet50: cached …"):
#: the console leaves it out, the run's log file keeps it
PHASE_LINE = {"said_by_phase_line": True}


@dataclass
class PreparedTeacher:
    model: nn.Module
    #: "checkpoint", "weights", "cache" (a teacher trained earlier) or "trained" (trained now)
    origin: str
    #: what the teacher was loaded from, for logs, reports and checkpoints
    source: str
    #: the weights file, when there is one
    path: Path | None = None


def prepare_teacher(
    name: str,
    num_classes: int,
    *,
    checkpoint: str | None = None,
    weights: str | None = None,
    train: Callable[[nn.Module], None] | None = None,
    cache: TeacherCache | None = None,
    spec: Mapping[str, Any] | None = None,
    role: str = "teacher",
    trusted_checkpoint: bool = False,
    options: Mapping[str, Any] | None = None,
    keep_dir: str | Path | None = None,
) -> PreparedTeacher:
    """Build teacher ``name`` and give it its weights.

    In order of preference: ``checkpoint`` (a state_dict or Lightning
    checkpoint file), ``weights`` (torchvision pretrained weights), else a
    teacher from ``cache`` trained earlier with the same ``spec``, else a new
    one trained by ``train`` and stored in ``cache``. ``role`` names the
    model in the log ("teacher", or "baseline" for a student trained alone).
    ``trusted_checkpoint`` loads a checkpoint that holds more than tensors
    (full unpickling: only for files you trust). ``options`` go to
    :func:`~distill.models.build_model` (e.g. a Hugging Face model's ``path``).
    A cached model that cannot be read or is not finite is trained again; a model
    trained now is kept as ``<keep_dir>/<role>.pt`` when the cache's disk is full.
    """
    options = dict(options or {})
    if checkpoint and weights:
        raise DistillError(
            f"give the teacher either a checkpoint ({checkpoint}) or pretrained weights ({weights}), not both"
        )
    if checkpoint:
        model = load_weights(build_model(name, num_classes, **options), checkpoint, trusted=trusted_checkpoint)
        path = Path(checkpoint).expanduser().resolve()
        _check_finite(model, f"teacher checkpoint {path}", "the model it holds diverged or is corrupt: use another file")
        log.info("Teacher %s loaded from checkpoint %s", name, path, extra=PHASE_LINE)
        return PreparedTeacher(model, "checkpoint", f"checkpoint {path}", path)
    if weights:
        model = build_model(name, num_classes, weights=weights, **options)
        log.info("Teacher %s loaded with pretrained weights %s", name, weights, extra=PHASE_LINE)
        where = f"weights in {options['path']}" if options.get("path") else f"torchvision weights {name}:{weights}"
        return PreparedTeacher(model, "weights", where)
    if train is None or cache is None or spec is None:
        raise DistillError(
            "the teacher has no checkpoint and no pretrained weights; set teacher.checkpoint=PATH "
            "or teacher.weights=DEFAULT, or let distill train it first"
        )

    path = cache.path(name, spec)
    with cache.locked(path):
        if path.exists():
            try:
                model = load_weights(build_model(name, num_classes, **options), path)
                _check_finite(model, f"cached {role} {path}")
            except DistillError as error:
                log.warning("Cached %s %s is unusable (%s); training it again", role, path, error)
            else:
                log.info("%s %s reused from the cache: %s", role.capitalize(), name, path, extra=PHASE_LINE)
                return PreparedTeacher(model, "cache", f"cached {role} {path}", path)
        model = build_model(name, num_classes, **options)
        log.info("No %s checkpoint given: training %s %s first (cached for later runs)", role, role, name, extra=PHASE_LINE)
        train(model)
        _check_finite(model, f"the {role} {name} trained now", "its training diverged: lower its learning rate")
        try:
            cache.save(model, path, spec)
        except DiskFullError as error:
            if keep_dir is None:
                raise
            kept = atomic_torch_save(model.state_dict(), Path(keep_dir) / f"{role}.pt")
            log.warning("The cache is full (%s); the trained %s is kept at %s: give %s.checkpoint=%s next time",
                        error, role, kept, role, kept)
            return PreparedTeacher(model, "trained", f"{role} trained by distill, kept at {kept} (cache full)", kept)
        log.info("%s %s trained and cached at %s", role.capitalize(), name, path)
        return PreparedTeacher(model, "trained", f"{role} trained by distill, cached at {path}", path)


def _check_finite(model: nn.Module, what: str, fix: str = "it is corrupt") -> None:
    bad = non_finite_entries(model)
    if bad:
        raise DistillError(f"{what} has non-finite weights ({len(bad)} tensor(s), e.g. {bad[0]}); {fix}")
