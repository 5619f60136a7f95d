"""Checks of command-line overrides that Hydra would only answer with a long message."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict

from distill.cli.config_directory import config_dir
from distill.cli.hydra_preflight import check_composition, check_grammar
from distill.cli.key_check import check_override_keys
from distill.cli.model_shortcuts import MODEL_GROUPS, register_model_shortcuts
from distill.errors import DistillError, close_matches
from distill.models.torchvision_models import torchvision_model_names

#: config groups whose options are files in conf/<group>/ (and, for the model groups, stored names)
#: Hydra's sweep functions a group choice may be written with (-m loss=choice(kd,dkd), -m loss=glob(*))
SWEEP_FUNCTIONS = ("choice(", "glob(", "sort(", "shuffle(", "tag(")
GROUPS = ("teacher", "student", "loss", "data", "trainer", "lr_scheduler", "experiment", "augment", "logger", "hparams_search")


def group_options(config_dir: Path, group: str) -> list[str]:
    """The options of ``group``: its files' paths without ``.yaml`` (``cifar100/resnet56_resnet20``)
    and, for ``teacher`` and ``student``, every model name registered in Hydra's ConfigStore."""
    folder = config_dir / group
    files = [p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml")]
    stored = []
    if group in MODEL_GROUPS:
        register_model_shortcuts(config_dir)
        stored = [name.removesuffix(".yaml") for name in ConfigStore.instance().list(group)]
    return sorted({*files, *stored})


def check_group_overrides(argv: Sequence[str], config_dir: Path) -> list[str]:
    """Return ``argv`` with prefixed model names expanded; raise on unknown options.

    A prefixed ``teacher=timm:NAME`` becomes ``teacher=timm teacher.name=timm:NAME``. An
    option that is not known raises :class:`DistillError` listing the close matches.
    """
    result = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key.lstrip("+") == "data.augment" and value in group_options(config_dir, "augment"):
            raise DistillError(
                f"data.augment={value}: data.augment switches a data set's own random crops and flips (true or false); "
                f"batch augmentation seen by both models is its own group: augment={value}"
            )
        group = key.removeprefix("override ").lstrip("+")
        if not sep or group not in GROUPS or value == "null":
            result.append(arg)
            continue
        options = group_options(config_dir, group)
        if not value.strip("[]' \""):
            raise DistillError(f"{key}= chooses no {group} (an unset shell variable?); choose one: {_available(group, options)}")
        if value.startswith(SWEEP_FUNCTIONS):
            if not value.startswith("choice("):
                result.append(arg)  # glob(*), sort(...): Hydra expands them over the group's options itself
                continue
            value = value.removeprefix("choice(").removesuffix(")")
        choices = [v.strip() for v in value.strip("[]").split(",")]
        unknown = [c for c in choices if c not in options]
        if not unknown:
            result.append(arg)
            continue
        family = unknown[0].partition(":")[0]
        if group in MODEL_GROUPS and len(choices) == 1 and ":" in unknown[0] and family in options:
            # a prefixed name (timm:resnet18) uses its family's config
            result += [f"{key}={family}", f"{group}.name={unknown[0]}"]
            continue
        bad = unknown[0]
        raise DistillError(f"unknown {group} '{bad}'{close_matches(bad, options)}; available: {_available(group, options)}")
    return result


def _available(group: str, options: list[str]) -> str:
    """A group's options for one line: torchvision's ~80 model names summed up, not listed."""
    if group not in MODEL_GROUPS:
        return ", ".join(options)
    torchvision = set(torchvision_model_names())
    listed = [o for o in options if o not in torchvision and o != "torchvision"]
    return ", ".join(listed) + " or any torchvision classification model name (distill models lists them)"


def check_checkpoint_command(argv: Sequence[str], command: str) -> None:
    """Fail early, in one line, on a missing ``checkpoint=``, an unknown ``data=`` option or a misspelt key (evaluate, export)."""
    if not any(arg.startswith(("checkpoint=", "-")) for arg in argv):
        raise DistillError(f"give the file to read: python -m {command} checkpoint=outputs/<date>/<time>/checkpoints/best.ckpt")
    if any(arg.partition("=")[0] == "checkpoint" and not arg.partition("=")[2].strip("'\" ") for arg in argv):
        raise DistillError(
            f"checkpoint= is empty (an unset shell variable?); give the file to read: "
            f"python -m {command} checkpoint=outputs/<date>/<time>/checkpoints/best.ckpt"
        )
    check_grammar(argv)
    data = [arg for arg in argv if arg.partition("=")[0].removeprefix("override ") == "data"]
    check_group_overrides(data, config_dir())
    name = command.rsplit(".", 1)[-1]  # conf/export.yaml, conf/evaluate.yaml
    check_override_keys(argv, config_dir(), name)
    check_composition(argv, config_dir(), name)


def command_line_keys(overrides: Sequence[str]) -> dict[str, bool]:
    """The keys (and config groups) the command line set, each mapped to whether it deletes (``~key``)."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
    except OverrideParseException as error:
        raise DistillError(f"cannot read the command line: {error}") from None
    return {override.key_or_group: override.is_delete() for override in parsed}


def apply_keys(node: DictConfig, cfg: DictConfig, prefix: str, keys: dict[str, bool]) -> None:
    """Copy the values the command line gave under ``prefix.`` from ``cfg`` into ``node`` (deleting ``~`` ones)."""
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
