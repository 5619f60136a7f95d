"""Random shifts (a crop of the zero-padded input) and flips, per sample, on the batch tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.augment.batch_views import BatchAugment
from distill.errors import DistillError


def shift_crop(x: Tensor, offsets: Tensor, padding: int, dim: int) -> Tensor:
    """Per sample, the window of ``x``'s original length along ``dim`` starting at ``offsets[i]`` in ``x`` zero-padded by ``padding``."""
    length = x.shape[dim]
    pad = [0, 0] * (x.dim() - 1 - (dim % x.dim())) + [padding, padding]
    padded = F.pad(x, pad)
    index = offsets.view(-1, *([1] * (x.dim() - 1))) + torch.arange(length, device=x.device).view(
        *([1] * (dim % x.dim())), length, *([1] * (x.dim() - 1 - dim % x.dim()))
    )
    index = index.expand(*x.shape[: dim % x.dim()], length, *x.shape[dim % x.dim() + 1 :])
    return padded.gather(dim, index)


def flip(x: Tensor, which: Tensor) -> Tensor:
    """``x`` with the samples where ``which`` is True reversed along the last dim."""
    return torch.where(which.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)


class RandomCropFlip(BatchAugment):
    """A random shift of up to ``padding`` along each spatial dim (CIFAR's "pad 4 and crop"), then a flip.

    Images ``[N, C, H, W]`` shift along H and W, signals ``[N, C, L]`` / ``[N, L]`` along L.
    Labels are unchanged.

    Args:
        padding: the largest shift, in pixels or samples.
        flip: reverse the last dim of half the samples (horizontal flip; off by default, as
            a time-reversed signal is often another class).
    """

    def __init__(self, padding: int = 4, flip: bool = False) -> None:
        if int(padding) != padding or padding < 0:
            raise DistillError(f"RandomCropFlip: padding must be a whole number >= 0, got {padding}")
        self.padding, self.flip = int(padding), bool(flip)

    def apply(self, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if x.dim() not in (2, 3, 4):
            raise DistillError(
                f"RandomCropFlip takes images [N, C, H, W] or signals [N, C, L] / [N, L], got shape {tuple(x.shape)}"
            )
        spatial = (-2, -1) if x.dim() == 4 else (-1,)
        if self.padding:
            for dim in spatial:
                offsets = torch.randint(0, 2 * self.padding + 1, (len(x),), device=x.device)
                x = shift_crop(x, offsets, self.padding, dim % x.dim())
        if self.flip:
            x = flip(x, torch.rand(len(x), device=x.device) < 0.5)
        return x, labels

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"
