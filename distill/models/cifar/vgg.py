"""VGG with BatchNorm for CIFAR, as in the distillation benchmarks (Tian et al. 2020).

Five stages of 3×3 conv-BN-ReLU; max-pooling halves the map after the first
three, global average pooling replaces VGG's fully connected head, and one
linear layer classifies. ``vgg8`` has one conv per stage, ``vgg13`` two.

Layers, in order: ``layer1`` (full size), ``pool1``, ``layer2`` (1/2), ``pool2``,
``layer3`` (1/4), ``pool3``, ``layer4`` (1/8), ``layer5`` (1/8), ``avgpool``
(pooled vector), ``fc``.
"""

from __future__ import annotations

from torch import Tensor, nn

#: channels of each stage's convolutions
VGGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


class CifarVGG(nn.Module):
    """VGG whose stage ``i`` has convolutions with ``stages[i]`` channels.

    Args:
        stages: five tuples of channel counts.
        num_classes: outputs of the classifier.
    """

    def __init__(self, stages: tuple[tuple[int, ...], ...], num_classes: int = 100) -> None:
        super().__init__()
        if len(stages) != 5:
            raise ValueError(f"CIFAR VGG has five stages, got {len(stages)}")
        in_channels = 3
        for index, channels in enumerate(stages, start=1):
            self.add_module(f"layer{index}", _stage(in_channels, channels))
            if index <= 3:
                self.add_module(f"pool{index}", nn.MaxPool2d(2))
            in_channels = channels[-1]
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.layer1(x))
        x = self.pool2(self.layer2(x))
        x = self.pool3(self.layer3(x))
        x = self.layer5(self.layer4(x))
        return self.fc(self.avgpool(x))


def _stage(in_channels: int, channels: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for out_channels in channels:
        # convolutions keep their bias, as in the benchmark's VGG (it counts in the parameters)
        layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        in_channels = out_channels
    return nn.Sequential(*layers)


def cifar_vgg(name: str, num_classes: int = 100) -> CifarVGG:
    """The CIFAR VGG ``name`` (a key of :data:`VGGS`) with ``num_classes`` outputs."""
    return CifarVGG(VGGS[name], num_classes)
