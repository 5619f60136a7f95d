"""Labels as soft targets, the form in which mixed labels are defined."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.partial_labels import IGNORE_INDEX
from distill.errors import DistillError


def soft_targets(labels: Tensor, num_classes: int | None) -> Tensor:
    """Class labels ``[N]`` as one-hot rows ``[N, C]``; a row of an unlabelled sample (``-100``) is all ``-100``.

    Soft targets ``[N, C]`` are returned as they are.
    """
    if labels.is_floating_point():
        return labels
    if num_classes is None:
        raise DistillError("mixing labels needs the number of classes; give the augmentation num_classes=...")
    unlabeled = labels == IGNORE_INDEX
    onehot = F.one_hot(labels.clamp(min=0), num_classes).float()
    return torch.where(unlabeled[:, None], torch.full_like(onehot, IGNORE_INDEX), onehot)


def mix_targets(targets: Tensor, lam: float, perm: Tensor) -> Tensor:
    """``lam * t + (1 - lam) * t[perm]``; a mix with an unlabelled row is unlabelled (all ``-100``)."""
    unlabeled = (targets == IGNORE_INDEX).all(dim=1)
    mixed = lam * targets + (1.0 - lam) * targets[perm]
    either = unlabeled | unlabeled[perm]
    return torch.where(either[:, None], torch.full_like(mixed, IGNORE_INDEX), mixed)
