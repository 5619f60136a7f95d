"""Optimizer and learning-rate schedule wiring shared by the Lightning modules."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from distill.errors import DistillError

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]

#: SGD with momentum and weight decay, the usual choice for distilling CNNs
default_optimizer: OptimizerFactory = functools.partial(
    torch.optim.SGD, lr=0.01, momentum=0.9, weight_decay=5e-4
)


def configure_optimizers(
    module: nn.Module,
    optimizer: OptimizerFactory | None,
    lr_scheduler: SchedulerFactory | None,
) -> Any:
    """What ``LightningModule.configure_optimizers`` returns: every trainable parameter of ``module``."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise DistillError(
            "nothing to train: every parameter of the student (and of the loss terms' adapters) has "
            "requires_grad=False; unfreeze the student (student.requires_grad_(True)) or the part of it to train"
        )
    opt = (optimizer or default_optimizer)(params)
    if lr_scheduler is None:
        return opt
    # "monitor" is only read by schedulers that need a metric, such as ReduceLROnPlateau
    return {
        "optimizer": opt,
        "lr_scheduler": {"scheduler": lr_scheduler(opt), "interval": "epoch", "monitor": "val/loss"},
    }
