"""Channel shuffle, shared by the ShuffleNets."""

from __future__ import annotations

from torch import Tensor, nn


class ChannelShuffle(nn.Module):
    """Interleave ``groups`` channel groups: channel ``g * (C / groups) + i`` moves to ``i * groups + g``."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
