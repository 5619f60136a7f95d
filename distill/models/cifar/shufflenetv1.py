"""ShuffleNetV1 for CIFAR as in the distillation benchmarks (Zhang et al. 2018; Tian et al. 2020).

Three groups (g = 3) with 240, 480 and 960 output channels and 4, 8 and 4
units; a 1×1 stem with 24 channels and no max-pooling, for 32×32 input. The
first unit of each stage halves the map and concatenates an average-pooled
shortcut; the others add the input.

Layers, in order: ``stem`` (1×1 conv, BN, ReLU), ``layer1`` (1/2 size),
``layer2`` (1/4), ``layer3`` (1/8), ``avgpool`` (pooled vector), ``fc``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distill.models.cifar.shuffle import ChannelShuffle


class ShuffleUnit(nn.Module):
    """Grouped 1×1 conv, shuffle, 3×3 depthwise, grouped 1×1 conv; joined with the shortcut.

    With ``stride`` 2 the branch gives ``out_channels`` minus the input's
    channels and the 3×3-average-pooled input is concatenated; with stride 1
    the branch's output is added to the input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int, first_groups: int) -> None:
        super().__init__()
        self.stride = stride
        branch = out_channels - in_channels if stride == 2 else out_channels
        mid = branch // 4
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, groups=first_groups, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            ChannelShuffle(first_groups),
            nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, branch, 1, groups=groups, bias=False),
            nn.BatchNorm2d(branch),
        )
        self.pool = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch(x)
        joined = torch.cat([out, self.pool(x)], 1) if self.pool is not None else out + x
        return self.relu(joined)


class CifarShuffleNetV1(nn.Module):
    """ShuffleNetV1 with ``groups`` groups, stage widths ``widths`` and ``units`` per stage.

    Args:
        widths: output channels of the three stages (divisible by 4 * groups).
        units: units per stage.
        groups: groups of the 1×1 convolutions.
        num_classes: outputs of the classifier.
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (240, 480, 960),
        units: tuple[int, int, int] = (4, 8, 4),
        groups: int = 3,
        num_classes: int = 100,
    ) -> None:
        super().__init__()
        channels = 24
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        for index, (width, count) in enumerate(zip(widths, units), start=1):
            stage = []
            for unit in range(count):
                # the stem's 24 channels are too few to split into groups
                first_groups = 1 if index == 1 and unit == 0 else groups
                stage.append(ShuffleUnit(channels, width, 2 if unit == 0 else 1, groups, first_groups))
                channels = width
            self.add_module(f"layer{index}", nn.Sequential(*stage))
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.avgpool(x))


def cifar_shufflenetv1(num_classes: int = 100) -> CifarShuffleNetV1:
    """The benchmark's ShuffleNetV1 (g = 3, widths 240/480/960) with ``num_classes`` outputs."""
    return CifarShuffleNetV1(num_classes=num_classes)
