"""Typos in override keys (``loss.kd.temprature=4``) as one line with the close match, before Hydra runs.

Hydra answers an unknown key with "Key 'temprature' is not in struct" and advice to add ``+``, which
then fails inside the class. Here the key is checked against the composed config and, under a
node with a ``_target_``, against the constructor's real arguments (``inspect.signature``).
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from distill.errors import DistillError

#: keys distill reads itself before instantiating a node (a loss term's weight schedule)
READ_BY_DISTILL = {"schedule"}
#: top-level keys distill reads that the config files may leave out (``+force=true``, a sweeper's metric, LM generation)
READ_AT_TOP = {"force", "optimized_metric", "sequence_kd", "on_policy"}


def target_arguments(node: Any) -> list[str] | None:
    """The keyword arguments ``node._target_`` takes; None when unknown or when it takes ``**kwargs``."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    try:
        parameters = inspect.signature(get_class(node._target_)).parameters.values()
    except Exception:  # not importable or no signature: nothing to check against
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    matches = difflib.get_close_matches(word, [c for c in choices if not c.startswith("_")], n=1, cutoff=0.6)
    return f"; did you mean '{matches[0]}'?" if matches else ""


def check_key(cfg: DictConfig, override: str, interpolated: Collection[str] = ()) -> None:
    """Raise :class:`DistillError` when the key of ``override`` (``[+|++]a.b.c=value``) cannot be meant.

    A new top-level key is meant when distill reads it (:data:`READ_AT_TOP`) or an interpolation
    refers to it (``interpolated``: ``hydra.run.dir=out/${tag} +tag=a``).
    """
    key, _, _ = override.partition("=")
    adding = key.startswith("+")
    key = key.lstrip("+")
    parent_path, _, name = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
    if not isinstance(parent, DictConfig):
        return  # a missing parent: Hydra's own message names it
    arguments = target_arguments(parent)
    where = parent_path or "the config"
    present = set(parent.keys())  # `in` is False for a mandatory ??? value, which is still a key
    if adding:
        if not parent_path and name not in present and name not in READ_AT_TOP and name not in interpolated:
            raise DistillError(
                f"unknown top-level key '{name}': nothing reads it{_did_you_mean(name, [*present, *READ_AT_TOP])}; "
                f"the top-level settings are {', '.join(sorted(k for k in present if k != 'hydra'))} and +force=true"
            )
        if arguments is not None and name not in arguments and name not in present and name not in READ_BY_DISTILL:
            raise DistillError(
                f"unknown key '{name}' in {where}: {parent._target_} takes no argument '{name}'"
                f"{_did_you_mean(name, arguments)}"
            )
        return
    if name in present:
        return
    if arguments is not None and name in arguments:
        raise DistillError(
            f"{key} is not in the config, but {parent._target_} takes it: add it with +{override}"
        )
    raise DistillError(f"unknown key '{name}' in {where}{_did_you_mean(name, [*parent.keys(), *(arguments or [])])}")


def _first_choice(override: str) -> str:
    """A sweep's first value (``loss.kd.temperature=1,4`` → ``…=1``); lists (``[kd,fitnet]``) stay whole."""
    key, _, value = override.partition("=")
    if value.startswith("["):
        return override
    return f"{key}={value.split(',')[0]}"


def check_override_keys(argv: Sequence[str], config_dir: Path, config_name: str = "config") -> None:
    """Compose ``config_name`` (a run's ``config``, or ``export``, ``evaluate``) with ``argv``'s group choices and check
    every other override's key against it."""
    group_names = {d.name for d in config_dir.iterdir() if d.is_dir()}
    overrides = [a for a in argv if "=" in a and not a.startswith(("-", "~", "hydra.", "+hydra.", "++hydra."))]

    def is_group(override: str) -> bool:
        key = override.partition("=")[0].removeprefix("override ").lstrip("+")
        return key in group_names or "/" in key

    groups = [_first_choice(a) for a in overrides if is_group(a)]
    try:
        with initialize_config_dir(str(config_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=groups)
    except Exception:  # composition problems (an unknown option, a missing plugin) are Hydra's to report
        return
    # a node whose class the command line replaces (~data +data._target_=my.Data) takes that class's keys
    replaced = {a.lstrip("~+").partition("=")[0].removesuffix("._target_") for a in argv
                if a.startswith("~") or a.partition("=")[0].endswith("._target_")}
    interpolated = _interpolated_names([*argv, OmegaConf.to_yaml(cfg)])
    added: set[str] = set()  # keys a `+key=` earlier on the line adds: a later `key=` sets what is there then
    for override in overrides:
        key = override.partition("=")[0].lstrip("+")
        if key in added:
            continue
        if not is_group(override) and not any(key == r or key.startswith(f"{r}.") for r in replaced):
            check_key(cfg, override, interpolated)
        if override.startswith("+"):
            added.add(key)


def _interpolated_names(texts: Sequence[str]) -> set[str]:
    """The top-level names that interpolations in ``texts`` refer to (``${tag}``, ``${run.name}`` -> tag, run)."""
    return {match for text in texts for match in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)}


def check_loss_order(argv: Sequence[str], config_dir: Path) -> None:
    """``loss=[kd,fitnet]``: refuse when two files set one term differently and the order alone would decide."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.removeprefix("override ") != "loss" or not value.startswith("["):
            continue
        names = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        files = {n: yaml.safe_load((config_dir / "loss" / f"{n}.yaml").read_text()) or {} for n in names
                 if (config_dir / "loss" / f"{n}.yaml").is_file()}
        for term in dict.fromkeys(t for content in files.values() for t in content):
            setters = {n: content[term] for n, content in files.items() if term in content}
            if len(setters) < 2:
                continue
            for setting in dict.fromkeys(k for node in setters.values() for k in (node or {})):
                values = {n: (node or {}).get(setting) for n, node in setters.items()}
                if len(set(map(repr, values.values()))) > 1 and not any(a.startswith(f"loss.{term}.{setting}=") for a in argv):
                    said = " vs ".join(f"{v} in {n}" for n, v in values.items())
                    raise DistillError(
                        f"loss={value}: loss.{term}.{setting} is {said}, and only the order of the list would decide; "
                        f"say which with loss.{term}.{setting}={list(values.values())[0]} (or another value)"
                    )
