"""CIFAR ResNets (He et al. 2016, section 4.2) as used in the distillation benchmarks.

Three stages of basic blocks on 32×32 input; depth = 6n + 2 with n blocks per
stage. The ``x4`` variants (Tian et al. 2020) widen every stage four times.

Layers, in order: ``stem`` (3×3 conv, BN, ReLU), ``layer1`` (full size),
``layer2`` (1/2), ``layer3`` (1/4), ``avgpool`` (pooled vector), ``fc``.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv_bn(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> list[nn.Module]:
    """A bias-free convolution (same padding) followed by BatchNorm."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
    return [conv, nn.BatchNorm2d(out_channels)]


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN pairs plus the input; a 1×1 conv-BN projection when shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            *conv_bn(in_channels, out_channels, stride=stride),
            nn.ReLU(inplace=True),
            *conv_bn(out_channels, out_channels),
        )
        reshapes = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Sequential(*conv_bn(in_channels, out_channels, 1, stride)) if reshapes else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet of ``depth`` = 6n + 2 layers with stage widths ``widths`` = (stem, stage1, stage2, stage3).

    Args:
        depth: total number of weighted layers; 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...).
        widths: channels of the stem and of the three stages.
        num_classes: outputs of the classifier.
    """

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
        blocks = (depth - 2) // 6
        self.stem = nn.Sequential(*conv_bn(3, widths[0]), nn.ReLU(inplace=True))
        self.layer1 = _stage(widths[0], widths[1], blocks, stride=1)
        self.layer2 = _stage(widths[1], widths[2], blocks, stride=2)
        self.layer3 = _stage(widths[2], widths[3], blocks, stride=2)
        # adaptive, so inputs other than 32x32 work as well
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(widths[3], num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.avgpool(x))


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    first = BasicBlock(in_channels, out_channels, stride)
    return nn.Sequential(first, *(BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)))


def init_weights(model: nn.Module) -> None:
    """He-normal convolutions (fan-out), unit BatchNorm scale and zero shift."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


#: name -> (depth, widths)
RESNETS: dict[str, tuple[int, tuple[int, int, int, int]]] = {
    **{f"resnet{d}": (d, (16, 16, 32, 64)) for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": (8, (32, 64, 128, 256)),
    "resnet32x4": (32, (32, 64, 128, 256)),
}


def cifar_resnet(name: str, num_classes: int = 100) -> CifarResNet:
    """The CIFAR ResNet ``name`` (a key of :data:`RESNETS`) with ``num_classes`` outputs."""
    depth, widths = RESNETS[name]
    return CifarResNet(depth, widths, num_classes)
