"""Mixup (Zhang et al., ICLR 2018): convex combinations of pairs of samples and of their labels."""

from __future__ import annotations

import torch
from torch import Tensor

from distill.augment.batch_views import BatchAugment
from distill.augment.soft_labels import mix_targets, soft_targets
from distill.errors import DistillError


def mixup(x: Tensor, lam: float, perm: Tensor) -> Tensor:
    """``lam * x + (1 - lam) * x[perm]``."""
    return lam * x + (1.0 - lam) * x[perm]


def check_alpha(alpha: float, owner: str) -> float:
    alpha = float(alpha)
    if not alpha > 0:
        raise DistillError(f"{owner}: alpha must be > 0, got {alpha}; 1.0 draws the mixing weight uniformly")
    return alpha


class Mixup(BatchAugment):
    """One mixing weight ``lam ~ Beta(alpha, alpha)`` per batch, each sample mixed with a random partner.

    Args:
        alpha: the Beta distribution's parameter (1.0: uniform).
        num_classes: needed to mix class labels (set by ``distill.run`` from the data).
    """

    mixes_labels = True

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None) -> None:
        self.alpha = check_alpha(alpha, "Mixup")
        self.num_classes = num_classes

    def apply(self, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        perm = torch.randperm(len(x), device=x.device)
        mixed = mixup(x, lam, perm)
        return mixed, None if labels is None else mix_targets(soft_targets(labels, self.num_classes), lam, perm)

    def __repr__(self) -> str:
        return f"Mixup(alpha={self.alpha})"
