"""Build a model by name: the one place that knows every model family."""

from __future__ import annotations

from torch import nn

from distill.models.torchvision_models import (
    build_torchvision_model,
    check_torchvision_name,
)


def build_model(name: str, num_classes: int, weights: str | None = None) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs (any torchvision classification model).

    ``weights`` names pretrained weights (torchvision's enum, e.g. ``"DEFAULT"``).
    """
    return build_torchvision_model(name, num_classes=num_classes, weights=weights)


def check_model_name(name: str) -> None:
    """Fail early, with close matches, on a model name :func:`build_model` would not know."""
    check_torchvision_name(name)
