"""CutMix (Yun et al., ICCV 2019): a box (a segment for 1-D signals) pasted from a partner sample."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from distill.augment.batch_views import BatchAugment
from distill.augment.mixup import check_alpha
from distill.augment.soft_labels import mix_targets, soft_targets
from distill.errors import DistillError


def cut_box(size: tuple[int, ...], lam: float, centre: tuple[float, ...]) -> tuple[tuple[int, int], ...]:
    """The ``[start, end)`` per spatial dim of a box covering about ``1 - lam`` of ``size``, clipped at the edges.

    ``centre`` holds a position in [0, 1) per dim.
    """
    side = (1.0 - lam) ** (1.0 / len(size))
    box = []
    for n, c in zip(size, centre):
        half, mid = side * n / 2.0, c * n
        box.append((int(max(0, math.floor(mid - half))), int(min(n, math.floor(mid + half)))))
    return tuple(box)


def cutmix(x: Tensor, box: tuple[tuple[int, int], ...], perm: Tensor) -> tuple[Tensor, float]:
    """``x`` with ``box`` (over its last ``len(box)`` dims) taken from ``x[perm]``, and the kept share ``lam``."""
    index = (Ellipsis, *(slice(a, b) for a, b in box))
    mixed = x.clone()
    mixed[index] = x[perm][index]
    total = math.prod(x.shape[-len(box):])
    cut = math.prod(b - a for a, b in box)
    return mixed, 1.0 - cut / total


class CutMix(BatchAugment):
    """CutMix on images ``[N, C, H, W]`` (a box) and on signals ``[N, C, L]`` or ``[N, L]`` (a segment).

    The label weight is the share of the sample actually kept, after clipping the box.

    Args:
        alpha: ``lam ~ Beta(alpha, alpha)`` sets the box's area share ``1 - lam``.
        num_classes: needed to mix class labels (set by ``distill.run`` from the data).
    """

    mixes_labels = True

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None) -> None:
        self.alpha = check_alpha(alpha, "CutMix")
        self.num_classes = num_classes

    def apply(self, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if x.dim() not in (2, 3, 4):
            raise DistillError(
                f"CutMix takes images [N, C, H, W] or signals [N, C, L] / [N, L], got shape {tuple(x.shape)}; "
                "use augment=mixup for other inputs"
            )
        dims = 2 if x.dim() == 4 else 1
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        centre = tuple(torch.rand(dims).tolist())
        perm = torch.randperm(len(x), device=x.device)
        mixed, kept = cutmix(x, cut_box(tuple(x.shape[-dims:]), lam, centre), perm)
        return mixed, None if labels is None else mix_targets(soft_targets(labels, self.num_classes), kept, perm)

    def __repr__(self) -> str:
        return f"CutMix(alpha={self.alpha})"
