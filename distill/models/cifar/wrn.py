"""Wide ResNets for CIFAR (Zagoruyko & Komodakis 2016), ``wrn_<depth>_<widen factor>``.

Pre-activation basic blocks in three stages of n = (depth - 4) / 6 blocks with
16k, 32k and 64k channels for widen factor k; no dropout (the distillation
benchmarks train without it).

Layers, in order: ``stem`` (3×3 conv), ``layer1`` (full size), ``layer2`` (1/2),
``layer3`` (1/4), ``norm`` (final BN and ReLU), ``avgpool`` (pooled vector), ``fc``.
"""

from __future__ import annotations

from torch import Tensor, nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice; the shortcut is the input, or a 1×1 conv of the activated input when shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.norm1 = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True))
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm2 = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        reshapes = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False) if reshapes else None

    def forward(self, x: Tensor) -> Tensor:
        activated = self.norm1(x)
        out = self.conv2(self.norm2(self.conv1(activated)))
        # a projection reads the activated input; an identity shortcut the raw one
        return out + (self.shortcut(activated) if self.shortcut is not None else x)


class WideResNet(nn.Module):
    """Wide ResNet of ``depth`` = 6n + 4 layers, stage widths multiplied by ``widen_factor``.

    Args:
        depth: 6n + 4 (16, 22, 28, 40, ...).
        widen_factor: k in 16k, 32k, 64k channels.
        num_classes: outputs of the classifier.
    """

    def __init__(self, depth: int, widen_factor: int, num_classes: int = 100) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"Wide ResNet depth must be 6n + 4 with n >= 1, got {depth}")
        blocks = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.layer1 = _stage(widths[0], widths[1], blocks, stride=1)
        self.layer2 = _stage(widths[1], widths[2], blocks, stride=2)
        self.layer3 = _stage(widths[2], widths[3], blocks, stride=2)
        self.norm = nn.Sequential(nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True))
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(widths[3], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.avgpool(self.norm(x)))


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    first = PreActBlock(in_channels, out_channels, stride)
    return nn.Sequential(first, *(PreActBlock(out_channels, out_channels) for _ in range(blocks - 1)))


#: name -> (depth, widen factor)
WIDE_RESNETS: dict[str, tuple[int, int]] = {"wrn_16_2": (16, 2), "wrn_40_1": (40, 1), "wrn_40_2": (40, 2)}


def cifar_wrn(name: str, num_classes: int = 100) -> WideResNet:
    """The Wide ResNet ``name`` (a key of :data:`WIDE_RESNETS`) with ``num_classes`` outputs."""
    depth, widen_factor = WIDE_RESNETS[name]
    return WideResNet(depth, widen_factor, num_classes)
