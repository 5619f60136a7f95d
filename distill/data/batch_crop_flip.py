"""Random crop of the padded image and horizontal flip, done on a whole batch tensor at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class BatchRandomCropFlip:
    """For each image of an ``(N, C, H, W)`` batch: zero-pad by ``padding``, crop a random ``H×W`` window, flip half.

    The batch form of torchvision's ``RandomCrop(size, padding)`` followed by
    ``RandomHorizontalFlip()``: the same distribution of outputs, drawn from torch's
    global generator once per batch instead of once per image (so not the same draws).
    """

    def __init__(self, padding: int = 4) -> None:
        self.padding = padding

    def __call__(self, x: Tensor) -> Tensor:
        n, _, height, width = x.shape
        p = self.padding
        shift = torch.randint(0, 2 * p + 1, (2, n))  # drawn on the CPU: the same draws on every device
        flip = torch.rand(n) < 0.5
        shift, flip = shift.to(x.device, non_blocking=True), flip.to(x.device, non_blocking=True)
        padded = F.pad(x, (p, p, p, p))
        rows = (shift[0, :, None] + torch.arange(height, device=x.device))[:, :, None]  # (n, H, 1)
        cols = shift[1, :, None] + torch.arange(width, device=x.device)  # (n, W)
        cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, :]  # (n, 1, W)
        batch = torch.arange(n, device=x.device)[:, None, None]
        # advanced indexing on dims 0, 2, 3 puts the channel last: (n, H, W, C)
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()
