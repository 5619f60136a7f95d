"""Optimizer and learning-rate schedule wiring shared by the Lightning modules."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

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
    opt = (optimizer or default_optimizer)(params)
    if lr_scheduler is None:
        return opt
    # "monitor" is only read by schedulers that need a metric, such as ReduceLROnPlateau
    return {
        "optimizer": opt,
        "lr_scheduler": {"scheduler": lr_scheduler(opt), "interval": "epoch", "monitor": "val/loss"},
    }
