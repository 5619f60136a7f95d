"""Build torchvision classification models by name, with pretrained weights when asked."""

from __future__ import annotations

import functools
import urllib.error

from torch import nn
from torchvision import models

from distill.errors import DistillError, close_matches


@functools.cache
def torchvision_model_names() -> tuple[str, ...]:
    """Names of torchvision's image classification models (``resnet50``, ``vit_b_16``, ...)."""
    return tuple(models.list_models(module=models))


def check_torchvision_name(name: str) -> None:
    """Raise :class:`DistillError`, with the close matches, if ``name`` is no torchvision classifier."""
    names = torchvision_model_names()
    if name not in names:
        raise DistillError(
            f"unknown torchvision model '{name}'{close_matches(name, names)}; "
            "see torchvision.models.list_models() for the classification models"
        )


def build_torchvision_model(name: str, num_classes: int, weights: str | None = None) -> nn.Module:
    """Build classification model ``name`` with ``num_classes`` outputs.

    ``weights`` names torchvision pretrained weights (``"DEFAULT"``,
    ``"IMAGENET1K_V2"``, ...); they are downloaded once into ``$TORCH_HOME``
    and must predict ``num_classes`` classes.
    """
    check_torchvision_name(name)
    if weights is None:
        return models.get_model(name, num_classes=num_classes)

    enum = models.get_model_weights(name)
    try:
        chosen = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    except KeyError:
        options = ["DEFAULT", *enum.__members__]
        raise DistillError(
            f"unknown weights '{weights}' for {name}{close_matches(weights, options)}; "
            f"choose one of {', '.join(options)}"
        ) from None
    weight_classes = len(chosen.meta["categories"])
    if weight_classes != num_classes:
        raise DistillError(
            f"pretrained weights {chosen} predict {weight_classes} classes but the data has "
            f"{num_classes}; train the teacher on this data instead (leave teacher.weights unset) "
            "or give a fine-tuned teacher.checkpoint"
        )
    try:
        return models.get_model(name, weights=chosen)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        raise DistillError(
            f"could not download pretrained weights {chosen} from {chosen.url} ({_reason(error)}); "
            "without internet, put the file in $TORCH_HOME/hub/checkpoints/ or use "
            "teacher.checkpoint=PATH"
        ) from None


def _reason(error: Exception) -> str:
    return str(getattr(error, "reason", error))
