"""Models from timm (PyTorch Image Models) by name: ``timm:<model name>``.

``timm:resnet18``, ``timm:convnext_atto``, ``timm:vit_tiny_patch16_224.augreg_in21k``
(a name with a pretrained tag). timm is optional: ``pip install 'distill[timm]'``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from distill.errors import DistillError, close_matches
from distill.models.factory import ModelFamily, register_family

PREFIX = "timm:"


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise DistillError("timm models need the timm package: pip install 'distill[timm]'") from None
    return timm


def check_timm_name(name: str) -> None:
    """Raise :class:`DistillError` unless ``timm:<model>`` names a timm model (and a known tag, if given)."""
    timm = _timm()
    model_name = name.removeprefix(PREFIX)
    if not timm.is_model(model_name):
        raise DistillError(
            f"unknown timm model '{model_name}'{close_matches(model_name, timm.list_models())}; "
            "see timm.list_models() for the names"
        )
    try:
        timm.models.get_pretrained_cfg(model_name)  # checks the tag after the dot, if any
    except RuntimeError:
        raise DistillError(
            f"timm model '{model_name}' has no such pretrained tag; timm.list_pretrained('{model_name.split('.')[0]}*') "
            "lists them"
        ) from None


def build_timm_model(name: str, num_classes: int, weights: str | None = None, **options: Any) -> nn.Module:
    """Build ``timm:<model>`` with ``num_classes`` outputs.

    ``weights="DEFAULT"`` loads timm's pretrained weights for the name (its
    default tag, or the tag in the name as in ``resnet18.a1_in1k``), downloaded
    once from the Hugging Face Hub; they must predict ``num_classes`` classes.
    ``options`` go to ``timm.create_model`` (e.g. ``drop_path_rate``).
    """
    timm = _timm()
    check_timm_name(name)
    model_name = name.removeprefix(PREFIX)
    if weights not in (None, "DEFAULT"):
        raise DistillError(
            f"timm weights are DEFAULT or unset, got '{weights}'; choose other pretrained weights by the "
            f"name's tag, e.g. {name.split('.')[0]}.<tag> (timm.list_pretrained() lists them)"
        )
    pretrained = weights == "DEFAULT"
    if pretrained:
        _check_pretrained(timm, model_name, num_classes)
    try:
        return timm.create_model(model_name, pretrained=pretrained, num_classes=num_classes, **options)
    except TypeError as error:
        raise DistillError(f"timm model '{model_name}' rejects the options {sorted(options)}: {error}") from None
    except (OSError, ConnectionError, TimeoutError) as error:  # the Hub's offline errors are OSErrors
        raise DistillError(
            f"could not download timm's pretrained weights for '{model_name}' ({type(error).__name__}); without "
            "internet, put them in the Hugging Face cache ($HF_HOME) first or use teacher.checkpoint=PATH"
        ) from None


def _check_pretrained(timm: Any, model_name: str, num_classes: int) -> None:
    """Fail before any download when the weights do not exist or predict another number of classes."""
    config = timm.models.get_pretrained_cfg(model_name)
    if config is None or not timm.models.is_model_pretrained(model_name.split(".")[0]):
        raise DistillError(f"timm has no pretrained weights for '{model_name}'; leave weights unset to train it first")
    if config.num_classes != num_classes:
        raise DistillError(
            f"timm's pretrained weights for '{model_name}' predict {config.num_classes} classes but the data has "
            f"{num_classes}; train the teacher on this data instead (leave teacher.weights unset) or give a "
            "fine-tuned teacher.checkpoint"
        )


TIMM_FAMILY = register_family(
    ModelFamily("timm", claims=lambda name: name.startswith(PREFIX), build=build_timm_model, check=check_timm_name)
)
