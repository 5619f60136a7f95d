"""MobileNetV2 for CIFAR as in the distillation benchmarks (Tian et al. 2020; Sandler et al. 2018).

The benchmark's variant: width multiplier 0.5, expansion 6, a stride-2 stem,
the second stage at stride 1 (small inputs), an expansion convolution in every
block (also in the first, whose expansion is 1), and a 1280-channel head.

Layers, in order: ``stem`` (3×3 conv, 1/2 size), ``layer1`` … ``layer7`` (the
inverted-residual stages; ``layer3`` at 1/4, ``layer4`` and ``layer5`` at 1/8,
``layer6`` and ``layer7`` at 1/16), ``head`` (1×1 conv to 1280 channels),
``avgpool`` (pooled vector), ``fc``.
"""

from __future__ import annotations

from torch import Tensor, nn

#: per stage: expansion factor (None: the network's), output channels at width 1, blocks, first stride
STAGES: tuple[tuple[int | None, int, int, int], ...] = (
    (1, 16, 1, 1),
    (None, 24, 2, 1),
    (None, 32, 3, 2),
    (None, 64, 4, 2),
    (None, 96, 3, 1),
    (None, 160, 3, 2),
    (None, 320, 1, 1),
)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class InvertedResidual(nn.Module):
    """1×1 expansion, 3×3 depthwise, linear 1×1 projection; adds the input when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.block = nn.Sequential(
            *conv_bn_relu(in_channels, hidden, 1),
            *conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class CifarMobileNetV2(nn.Module):
    """MobileNetV2 with channel ``width`` multiplier and block ``expansion``.

    Args:
        width: multiplies every stage's channels (0.5 in the benchmark).
        expansion: hidden-channel factor of the blocks after the first stage (6).
        num_classes: outputs of the classifier.
    """

    def __init__(self, width: float = 0.5, expansion: int = 6, num_classes: int = 100) -> None:
        super().__init__()
        channels = int(32 * width)
        self.stem = nn.Sequential(*conv_bn_relu(3, channels, 3, stride=2))
        for index, (factor, out_width, blocks, stride) in enumerate(STAGES, start=1):
            out_channels = int(out_width * width)
            stage = []
            for block in range(blocks):
                stage.append(InvertedResidual(channels, out_channels, stride if block == 0 else 1, factor or expansion))
                channels = out_channels
            self.add_module(f"layer{index}", nn.Sequential(*stage))
        head_channels = int(1280 * width) if width > 1.0 else 1280
        self.head = nn.Sequential(*conv_bn_relu(channels, head_channels, 1))
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(head_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for index in range(1, len(STAGES) + 1):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(self.avgpool(self.head(x)))


def cifar_mobilenetv2(num_classes: int = 100) -> CifarMobileNetV2:
    """The benchmark's MobileNetV2 (width 0.5, expansion 6) with ``num_classes`` outputs."""
    return CifarMobileNetV2(width=0.5, expansion=6, num_classes=num_classes)
