"""Build a model by name: the one place that knows every model family.

A family is a builder plus the names it answers to. The torchvision family
answers to every name no other family claims, so its close-match error is the
one users see for a typo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from distill.errors import DistillError, close_matches
from distill.models.torchvision_models import build_torchvision_model, torchvision_model_names


@dataclass(frozen=True)
class ModelFamily:
    """Models built by ``build(name, num_classes, weights=..., **options)``.

    Args:
        name: the family's name in messages ("torchvision", "cifar", ...).
        claims: whether a model name belongs to this family.
        build: the builder.
        names: the names to suggest for a typo (may be empty for open families).
        check: raises :class:`DistillError` for a claimed name that cannot be built
            (open families such as ``timm:<name>``), so runs fail before any training.
    """

    name: str
    claims: Callable[[str], bool]
    build: Callable[..., nn.Module]
    names: Callable[[], Iterable[str]] = tuple
    check: Callable[[str], None] | None = None


_FAMILIES: list[ModelFamily] = []


def register_family(family: ModelFamily) -> ModelFamily:
    """Add a family; it is asked before the ones registered earlier and before torchvision."""
    _FAMILIES.insert(0, family)
    return family


def _family_of(name: str) -> ModelFamily | None:
    _register_builtin_families()
    return next((family for family in _FAMILIES if family.claims(name)), None)


def build_model(name: str, num_classes: int, weights: str | None = None, **options: Any) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs.

    ``name`` is any torchvision classification model or a name of another
    registered family; ``weights`` names pretrained weights where the family has
    them (torchvision's enum, e.g. ``"DEFAULT"``); ``options`` go to the
    family's builder (e.g. ``path`` for a Hugging Face model directory).
    """
    check_model_name(name)
    family = _family_of(name)
    if family is None:
        if options:
            raise DistillError(
                f"torchvision model '{name}' takes no options, got {sorted(options)}; "
                "remove them from the teacher/student config"
            )
        return build_torchvision_model(name, num_classes=num_classes, weights=weights)
    return family.build(name, num_classes, weights=weights, **options)


def check_model_name(name: str) -> None:
    """Fail early, with close matches, on a model name :func:`build_model` would not know."""
    family = _family_of(name)
    if family is not None:
        if family.check is not None:
            family.check(name)
        return
    known = list(torchvision_model_names())
    for family in _FAMILIES:
        known.extend(family.names())
    if name not in torchvision_model_names():
        raise DistillError(
            f"unknown model '{name}'{close_matches(name, known)}; give a torchvision classification "
            "model or another model family's name (README, 'Models')"
        )


_builtin_registered = False


def _register_builtin_families() -> None:
    """Families that live in their own modules, registered on first use (keeps imports light)."""
    global _builtin_registered
    if _builtin_registered:
        return
    _builtin_registered = True
    # each module calls register_family when imported
    for module in _BUILTIN_FAMILY_MODULES:
        __import__(module)


#: modules that register a model family (add new families here)
_BUILTIN_FAMILY_MODULES: tuple[str, ...] = (
    "distill.models.cifar",
    "distill.models.timm_models",
    "distill.models.huggingface",
    "distill.models.mnist1d",
    "distill.models.causal_lm",
)
