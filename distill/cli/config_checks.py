"""Every value of distill's own config keys checked by type and range before anything is built or trained.

One table (:data:`RULES`) says what each key may hold; :func:`check_config` walks the
composed config against it and raises one :class:`DistillError` naming the full key,
the value and what is allowed. Values that are legal but almost certainly a mistake
(:data:`SUSPICIOUS`) are refused too, unless the run says ``+force=true``, when they
become a warning. :func:`check_buildable` then builds the optimizers, schedules and
callbacks the run will need, so a wrong keyword fails in seconds, not after the teacher
has trained.

Over 300 lines for a reason: most of it is the one table of rules, which reads best in one place.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from distill.data.base import DistillDataModule
from distill.errors import DistillError, first_line
from distill.losses.base import LossTerm
from distill.report.speed import LATENCY_MODES

log = logging.getLogger("distill")


@dataclass(frozen=True)
class Whole:
    """A whole number (not a bool, not a float) in ``minimum .. maximum``."""

    minimum: int
    maximum: int | None = None

    def allowed(self) -> str:
        if self.maximum is None:
            return f"a whole number >= {self.minimum}"
        return f"a whole number in {self.minimum}..{self.maximum}"

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, int) and not isinstance(value, bool) and value >= self.minimum
            and (self.maximum is None or value <= self.maximum)
        )


@dataclass(frozen=True)
class Number:
    """A finite number; ``above`` is an exclusive lower bound, ``minimum``/``maximum`` inclusive ones."""

    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None

    def allowed(self) -> str:
        bounds = [f">= {self.minimum:g}" if self.minimum is not None else "",
                  f"> {self.above:g}" if self.above is not None else "",
                  f"<= {self.maximum:g}" if self.maximum is not None else ""]
        return "a finite number " + " and ".join(b for b in bounds if b)

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return not (
            (self.minimum is not None and value < self.minimum)
            or (self.above is not None and value <= self.above)
            or (self.maximum is not None and value > self.maximum)
        )


@dataclass(frozen=True)
class WholeList:
    """A list of whole numbers >= ``minimum`` (epoch milestones)."""

    minimum: int = 0

    def allowed(self) -> str:
        return f"a list of whole numbers >= {self.minimum}, e.g. [30,60]"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (list, tuple)) and all(Whole(self.minimum).accepts(v) for v in value)


@dataclass(frozen=True)
class Flag:
    def allowed(self) -> str:
        return "true or false"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class OneOf:
    """One of a few names (and ``true``/``false`` too where ``flags``)."""

    choices: tuple[str, ...]
    flags: bool = False

    def allowed(self) -> str:
        return "one of " + ", ".join(self.choices) + (" (or true/false)" if self.flags else "")

    def accepts(self, value: Any) -> bool:
        return (isinstance(value, str) and value in self.choices) or (self.flags and isinstance(value, bool))


@dataclass(frozen=True)
class Text:
    """A path or name that is not empty (an empty one is an unset shell variable, not "none": that is null)."""

    def allowed(self) -> str:
        return "a path or name, not empty (an unset shell variable?); leave the key out or set it to null for none"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value.strip())


@dataclass(frozen=True)
class Either:
    """What one of ``kinds`` accepts (Lightning's batch counts: a whole number or a fraction)."""

    kinds: tuple[Whole | Number, ...]

    def allowed(self) -> str:
        return " or ".join(kind.allowed() for kind in self.kinds)

    def accepts(self, value: Any) -> bool:
        return any(kind.accepts(value) for kind in self.kinds)


Kind = Whole | Number | WholeList | Flag | OneOf | Text | Either

#: a share of the batches or a count of them (Lightning's limit_*_batches, val_check_interval)
_BATCHES = Either((Whole(0), Number(minimum=0, maximum=1)))

#: where the optimizers and schedules of the run live: the student's, the teacher's, each ensemble member's
_SCHEDULES = ("", "teacher.train.", "teacher.members.*.train.")

#: key pattern (``*`` is any one key) -> (what it may hold, whether null is allowed)
RULES: dict[str, tuple[Kind, bool]] = {
    "seed": (Whole(0, 2**32 - 1), False),
    **{key: (Flag(), True) for key in ("force", "resume", "baseline", "log_grad_norms", "channels_last", "compile",
                                        "verbose", "report.speed")},
    "report.latency": (OneOf(tuple(LATENCY_MODES), flags=True), False),
    # the teacher's weights kept in this dtype (checked again where the module casts them)
    **{f"teacher.{key}dtype": (OneOf(("bfloat16", "bf16", "float16", "fp16", "float32")), True)
       for key in ("", "members.*.")},
    "trainer.max_epochs": (Whole(1), False),
    "trainer.min_epochs": (Whole(0), True),
    "trainer.max_steps": (Whole(-1), True),
    "trainer.accumulate_grad_batches": (Whole(1), True),
    "trainer.log_every_n_steps": (Whole(1), True),
    "trainer.check_val_every_n_epoch": (Whole(1), True),
    "trainer.gradient_clip_val": (Number(minimum=0), True),
    **{f"trainer.limit_{split}_batches": (_BATCHES, True) for split in ("train", "val", "test", "predict")},
    "trainer.val_check_interval": (Either((Whole(1), Number(above=0, maximum=1))), True),
    # paths and names: an empty value (an unset shell variable) would quietly mean "none" or the launch directory
    **{key: (Text(), True) for key in (
        "cache_dir", "ckpt_path", "teacher.checkpoint", "teacher.weights", "teacher.path", "teacher.members.*.checkpoint",
        "teacher.members.*.weights", "student.checkpoint", "student.weights", "student.path", "data.root",
        "data.tokenizer", "logger.save_dir",
    )},
    "teacher.train.epochs": (Whole(0), True),
    "teacher.members.*.train.epochs": (Whole(0), True),
    "teacher.cache": (Flag(), True),
    "teacher.trusted_checkpoint": (Flag(), True),
    **{f"{where}optimizer.{key}": (Number(minimum=0), True)
       for where in _SCHEDULES for key in ("lr", "momentum", "weight_decay")},
    **{f"{where}lr_scheduler.milestones": (WholeList(0), True) for where in _SCHEDULES},
    **{f"{where}lr_scheduler.gamma": (Number(above=0), True) for where in _SCHEDULES},
    "lr_scheduler.T_max": (Whole(1), True),
    # a teacher trained for 0 epochs (refused unless forced) never steps its schedule
    **{f"{where}lr_scheduler.T_max": (Whole(0), True) for where in _SCHEDULES[1:]},
    **{f"{where}lr_scheduler.step_size": (Whole(1), True) for where in _SCHEDULES},
    **{f"{where}lr_scheduler.eta_min": (Number(minimum=0), True) for where in _SCHEDULES},
    "loss.*.temperature": (Number(above=0), False),
    "loss.*.weight": (Number(minimum=0), False),
    "loss.*.alpha": (Number(minimum=0), False),
    "loss.*.beta": (Number(minimum=0), False),
    "loss.*.gamma": (Number(minimum=0), False),
    "loss.*.threshold": (Number(minimum=0, maximum=1), False),
    "loss.*.warmup_epochs": (Whole(0), False),
    "data.batch_size": (Whole(1), False),
    "data.num_workers": (Whole(0), False),
    "data.image_size": (Whole(1), True),
    "data.channels": (Whole(1), True),
    "data.max_length": (Whole(1), True),
    "data.val_size": (Whole(0), True),
    **{f"data.{key}_fraction": (Number(minimum=0, maximum=1), True) for key in ("val", "test", "unlabeled", "label")},
    "data.split_seed": (Whole(0), True),
    **{f"data.{key}": (Flag(), True) for key in ("labels", "with_index", "download", "augment")},
}


def _is_zero(value: Any) -> bool:
    return value == 0


#: key pattern -> (test, why it is almost certainly a mistake), ...; refused unless +force=true
SUSPICIOUS: dict[str, tuple[tuple[Callable[[Any], bool], str], ...]] = {
    **{f"{where}optimizer.lr": (
        (_is_zero, "a learning rate of 0 never changes the model"),
        (lambda v: v > 10, "a learning rate above 10 makes every optimizer distill configures diverge; "
                           "the usual values are 1e-4 (Adam) to 0.5 (SGD)"),
    ) for where in _SCHEDULES},
    **{f"{where}optimizer.momentum": (
        (lambda v: v >= 1, "a momentum of 1 or more makes each step larger than the last, without bound; "
                           "the usual value is 0.9"),
    ) for where in _SCHEDULES},
    "loss.*.temperature": (
        (lambda v: v < 0.05, "a temperature this small turns the softmax into an argmax (and a T² factor shrinks "
                             "the term towards 0); the usual values are 1 to 8"),
    ),
    "trainer.limit_train_batches": ((_is_zero, "no training batch would run: the student would stay as it starts"),),
    "teacher.train.epochs": ((_is_zero, "the teacher would stay random (untrained) and be cached as if trained"),),
    "teacher.members.*.train.epochs": (
        (_is_zero, "that member would stay random (untrained) and be cached as if trained"),
    ),
    "data.image_size": ((lambda v: v > 1024, "images this large need tens of GB per batch; the usual sizes are 32 to 512"),),
}


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`DistillError` for the first value of ``cfg`` that :data:`RULES` does not allow.

    A value of :data:`SUSPICIOUS` is refused right after its own type check (so ``teacher.train.epochs=0``
    is named, not the schedule length it implies), or only logged with ``+force=true``.
    """
    force = cfg.get("force", False) is True
    for pattern, (kind, nullable) in RULES.items():
        for key, value in _matches(cfg, pattern):
            if value is None and nullable:
                continue
            if not kind.accepts(value):
                raise DistillError(f"{key} must be {kind.allowed()}, got {_shown(value, kind)}")
            if value is None or not _in_use(cfg, key):
                continue
            for test, why in SUSPICIOUS.get(pattern, ()):
                if not test(value):
                    continue
                if not force:
                    raise DistillError(f"{key}={value}: {why}; if you mean it, add +force=true")
                log.warning("%s=%s: %s (kept because force=true)", key, value, why)
    _check_loss_entries(cfg)


def _in_use(cfg: DictConfig, key: str) -> bool:
    """Whether the teacher schedule ``key`` belongs to will run (the teacher is trained first)."""
    if not key.startswith("teacher."):
        return True
    if key.startswith("teacher.members."):
        member = cfg.teacher.members[key.split(".")[2]]
        return not (member.get("checkpoint") or member.get("weights"))
    return not (cfg.teacher.get("checkpoint") or cfg.teacher.get("weights"))


def _check_loss_entries(cfg: DictConfig) -> None:
    loss = cfg.get("loss")
    if not isinstance(loss, DictConfig) or not loss:
        raise DistillError(f"loss must be a mapping of term name to loss term config, got {_plain(loss)!r}; e.g. loss=kd")
    for name in loss:
        try:
            value = _plain(loss[name])
        except OmegaConfBaseException:
            continue  # ??? or an interpolation: later code says what is missing
        if value is None:
            continue  # a term switched off (loss.ce=null)
        example = f"e.g. loss.{name}={{_target_: distill.losses.KD, temperature: 4}} or loss=kd"
        if not isinstance(value, dict) or "_target_" not in value:
            raise DistillError(f"loss.{name} must be a loss term config with a _target_, got {value!r}; {example}")
        target = value["_target_"]
        try:
            module, _, attribute = str(target).rpartition(".")
            cls = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError, ValueError):
            raise DistillError(f"loss.{name}._target_={target} cannot be imported; {example}") from None
        if not (isinstance(cls, type) and issubclass(cls, LossTerm)):
            raise DistillError(
                f"loss.{name}._target_={target} is not a distill loss term (a distill.losses.LossTerm); "
                "use one of distill.losses (e.g. distill.losses.LogitMSE for a mean squared error on the logits)"
            )


def check_buildable(cfg: DictConfig, student: nn.Module) -> None:
    """Build every optimizer, schedule and callback of the run once, now: a bad setting fails in seconds."""
    params = [p for p in student.parameters() if p.requires_grad] or [nn.Parameter(torch.zeros(1))]
    _optimizer_and_schedule(cfg, "optimizer", "lr_scheduler", params)
    teacher = cfg.teacher
    schedules = [("teacher.train", teacher.get("train"))]
    for name, member in (teacher.get("members") or {}).items():
        if isinstance(member, DictConfig) and member.get("train") is not None:
            schedules.append((f"teacher.members.{name}.train", member.train))
    for where, node in schedules:
        if isinstance(node, DictConfig) and node.get("optimizer") is not None:
            _optimizer_and_schedule(node, f"{where}.optimizer", f"{where}.lr_scheduler", [nn.Parameter(torch.zeros(1))])
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None:
            _build(lambda node=node: instantiate(node), f"callbacks.{name}")


def _optimizer_and_schedule(node: DictConfig, optimizer_key: str, scheduler_key: str, params: list) -> None:
    optimizer_node = node.get(optimizer_key.rsplit(".", 1)[-1])
    scheduler_node = node.get(scheduler_key.rsplit(".", 1)[-1])
    optimizer = _build(lambda: instantiate(optimizer_node)(params), optimizer_key)
    if scheduler_node is not None:
        _build(lambda: instantiate(scheduler_node)(optimizer), scheduler_key)


def _build(make: Callable[[], Any], key: str) -> Any:
    try:
        return make()
    except DistillError:
        raise
    except InstantiationException as error:
        cause = error.__cause__ or error
        if isinstance(cause, DistillError):
            raise cause from None
        raise DistillError(f"{key} cannot be built: {first_line(cause)}; check the {key}.* settings") from None
    except (TypeError, ValueError, AttributeError, ImportError, OmegaConfBaseException) as error:
        raise DistillError(f"{key} cannot be built: {first_line(error)}; check the {key}.* settings") from None


def _matches(node: Any, pattern: str, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(full key, value)`` for every key of ``node`` that ``pattern`` names (``*``: any one key)."""
    head, _, rest = pattern.partition(".")
    if not isinstance(node, DictConfig):
        return
    names = [str(k) for k in node] if head == "*" else [head]
    for name in names:
        if name not in node:
            continue
        try:
            value = node[name]
        except OmegaConfBaseException:  # ??? or an interpolation that cannot be resolved here: later code says so
            continue
        if rest:
            yield from _matches(value, rest, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException:
            return OmegaConf.to_container(value, resolve=False)
    return value


def _shown(value: Any, kind: Kind) -> str:
    if isinstance(kind, Number) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    return repr(value)


def check_batch_size(cfg: DictConfig, datamodule: Any) -> None:
    """A batch larger than the training split is legal (one batch of all of it) but rarely meant: a warning."""
    if not isinstance(datamodule, DistillDataModule):
        return  # not a distill data module: its loaders are its own
    datamodule.prepare_data()
    datamodule.setup()
    size = len(datamodule.splits["train"])
    if cfg.data.batch_size > size:
        log.warning(
            "data.batch_size=%s is larger than the training split (%d samples): every step trains on all of "
            "it at once; use data.batch_size <= %d for several steps per epoch", cfg.data.batch_size, size, size,
        )
