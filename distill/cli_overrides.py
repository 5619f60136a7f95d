"""Checks of command-line overrides that Hydra would only answer with a long message."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from distill.errors import DistillError, close_matches

#: config groups whose options are files in conf/<group>/
GROUPS = ("teacher", "student", "loss", "data", "trainer", "lr_scheduler", "experiment")
#: groups where any torchvision model name is accepted as an option
MODEL_GROUPS = ("teacher", "student")


def group_options(config_dir: Path, group: str) -> list[str]:
    """The options of ``group``: its files' paths without ``.yaml`` (``cifar100/resnet56_resnet20``)."""
    folder = config_dir / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def check_group_overrides(
    argv: Sequence[str], config_dir: Path, model_names: Callable[[], Sequence[str]]
) -> list[str]:
    """Return ``argv`` with model-name shortcuts expanded; raise on unknown options.

    ``teacher=NAME`` for a torchvision model without its own config file
    becomes ``teacher=torchvision teacher.name=NAME``, and a prefixed
    ``teacher=timm:NAME`` becomes ``teacher=timm teacher.name=timm:NAME``. An option that is
    neither raises :class:`DistillError` listing the close matches.
    """
    result = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        group = key.removeprefix("override ")
        if not sep or group not in GROUPS or not value or value == "null":
            result.append(arg)
            continue
        options = group_options(config_dir, group)
        choices = [v.strip() for v in value.strip("[]").split(",")]
        unknown = [c for c in choices if c not in options]
        if not unknown:
            result.append(arg)
            continue
        if group in MODEL_GROUPS and len(choices) == 1 and unknown[0] in model_names():
            result += [f"{group}=torchvision", f"{group}.name={unknown[0]}"]
            continue
        family = unknown[0].partition(":")[0]
        if group in MODEL_GROUPS and len(choices) == 1 and ":" in unknown[0] and family in options:
            # a prefixed name (timm:resnet18) uses its family's config
            result += [f"{group}={family}", f"{group}.name={unknown[0]}"]
            continue
        bad = unknown[0]
        candidates = dict.fromkeys([*options, *(model_names() if group in MODEL_GROUPS else [])])
        hint = close_matches(bad, candidates)
        raise DistillError(
            f"unknown {group} '{bad}'{hint}; available: {', '.join(o for o in options if o != 'torchvision')}"
            + (" or any torchvision classification model name" if group in MODEL_GROUPS else "")
        )
    return result

