"""CIFAR-sized networks of the distillation literature, built by name.

The teachers and students of Tian et al. 2020's CIFAR-100 benchmark (CRD),
reused by later work (ReviewKD, DKD): ResNets ``resnet8`` … ``resnet110``,
``resnet8x4``, ``resnet32x4``; Wide ResNets ``wrn_16_2``, ``wrn_40_1``,
``wrn_40_2``; ``vgg8``, ``vgg13``; ``mobilenetv2``, ``shufflenetv1``,
``shufflenetv2``. They are made for 32×32 input and pool adaptively, so other
sizes from 8×8 up work too. Every family names its stages ``layer1``,
``layer2``, … and its pooled feature ``avgpool`` (see each module), so the
feature-based loss configs work on them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from distill.errors import DistillError
from distill.models.cifar.mobilenetv2 import cifar_mobilenetv2
from distill.models.cifar.resnet import RESNETS, cifar_resnet
from distill.models.cifar.shufflenetv1 import cifar_shufflenetv1
from distill.models.cifar.shufflenetv2 import cifar_shufflenetv2
from distill.models.cifar.vgg import VGGS, cifar_vgg
from distill.models.cifar.wrn import WIDE_RESNETS, cifar_wrn
from distill.models.factory import ModelFamily, register_family

#: model name -> builder taking num_classes
CIFAR_MODELS: dict[str, Callable[[int], nn.Module]] = {
    **{name: (lambda n, name=name: cifar_resnet(name, n)) for name in RESNETS},
    **{name: (lambda n, name=name: cifar_wrn(name, n)) for name in WIDE_RESNETS},
    **{name: (lambda n, name=name: cifar_vgg(name, n)) for name in VGGS},
    "mobilenetv2": cifar_mobilenetv2,
    "shufflenetv1": cifar_shufflenetv1,
    "shufflenetv2": cifar_shufflenetv2,
}


def build_cifar_model(name: str, num_classes: int, weights: str | None = None, **options: Any) -> nn.Module:
    """The CIFAR network ``name`` with ``num_classes`` outputs, randomly initialised.

    There are no pretrained weights to ask for: a teacher is trained first
    (and cached) or loaded from ``teacher.checkpoint``.
    """
    if weights is not None:
        raise DistillError(
            f"CIFAR network '{name}' has no pretrained weights (got weights={weights}); leave weights unset "
            "to train it first, or give teacher.checkpoint=PATH"
        )
    if options:
        raise DistillError(f"CIFAR network '{name}' takes no options, got {sorted(options)}; remove them from its config")
    return CIFAR_MODELS[name](num_classes)


CIFAR_FAMILY = register_family(
    ModelFamily("cifar", claims=CIFAR_MODELS.__contains__, build=build_cifar_model, names=CIFAR_MODELS.keys)
)

__all__ = ["CIFAR_MODELS", "build_cifar_model"]
