"""ShuffleNetV2 1× for CIFAR as in the distillation benchmarks (Ma et al. 2018; Tian et al. 2020).

Stages of 116, 232 and 464 channels, each a downsampling unit followed by 3, 7
and 3 basic units, then a 1×1 conv to 1024 channels; a 1×1 stem with 24
channels and no max-pooling, for 32×32 input.

Layers, in order: ``stem`` (1×1 conv, BN, ReLU), ``layer1`` (1/2 size),
``layer2`` (1/4), ``layer3`` (1/8), ``head`` (1×1 conv to 1024 channels),
``avgpool`` (pooled vector), ``fc``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distill.models.cifar.shuffle import ChannelShuffle


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, depthwise: bool = False) -> list[nn.Module]:
    groups = in_channels if depthwise else 1
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(out_channels)]


def _right_branch(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    """1×1 conv-BN-ReLU, 3×3 depthwise conv-BN, 1×1 conv-BN-ReLU."""
    return nn.Sequential(
        *_conv_bn(in_channels, channels, 1), nn.ReLU(inplace=True),
        *_conv_bn(channels, channels, 3, stride, depthwise=True),
        *_conv_bn(channels, channels, 1), nn.ReLU(inplace=True),
    )


class BasicUnit(nn.Module):
    """Half the channels pass unchanged, the other half go through the branch; then shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.branch = _right_branch(channels - self.half, channels - self.half, stride=1)
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        kept, processed = x[:, : self.half], x[:, self.half :]
        return self.shuffle(torch.cat([kept, self.branch(processed)], 1))


class DownsampleUnit(nn.Module):
    """Two stride-2 branches on the whole input, half of ``out_channels`` each; then shuffle."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.left = nn.Sequential(
            *_conv_bn(in_channels, in_channels, 3, 2, depthwise=True),
            *_conv_bn(in_channels, half, 1), nn.ReLU(inplace=True),
        )
        self.right = _right_branch(in_channels, half, stride=2)
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(torch.cat([self.left(x), self.right(x)], 1))


class CifarShuffleNetV2(nn.Module):
    """ShuffleNetV2 with stage ``widths``, ``units`` basic units per stage and a ``head_channels`` 1×1 conv.

    Args:
        widths: output channels of the three stages (even).
        units: basic units after each stage's downsampling unit.
        head_channels: channels of the last 1×1 convolution.
        num_classes: outputs of the classifier.
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (116, 232, 464),
        units: tuple[int, int, int] = (3, 7, 3),
        head_channels: int = 1024,
        num_classes: int = 100,
    ) -> None:
        super().__init__()
        channels = 24
        self.stem = nn.Sequential(*_conv_bn(3, channels, 1), nn.ReLU(inplace=True))
        for index, (width, count) in enumerate(zip(widths, units), start=1):
            stage = [DownsampleUnit(channels, width), *(BasicUnit(width) for _ in range(count))]
            self.add_module(f"layer{index}", nn.Sequential(*stage))
            channels = width
        self.head = nn.Sequential(*_conv_bn(channels, head_channels, 1), nn.ReLU(inplace=True))
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(head_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.avgpool(self.head(x)))


def cifar_shufflenetv2(num_classes: int = 100) -> CifarShuffleNetV2:
    """The benchmark's ShuffleNetV2 1× (116/232/464 channels, 1024-channel head) with ``num_classes`` outputs."""
    return CifarShuffleNetV2(num_classes=num_classes)
