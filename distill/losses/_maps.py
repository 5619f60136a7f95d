"""Helpers shared by the loss terms built on feature maps and embeddings (AB, CC, CRD, FSP, FT, NST, ReviewKD, VID)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from torch import Tensor, nn

from distill.errors import DistillError
from distill.features import read_features


def feature_maps(features: Mapping[str, Tensor], layers: Iterable[str], role: str, owner: str) -> list[Tensor]:
    """The layers' outputs as ``[B, C, H, W]`` maps; a vector ``[B, C]`` (a pooled feature) becomes ``[B, C, 1, 1]``."""
    layers = list(layers)
    maps = []
    for layer, feature in zip(layers, read_features(features, layers, role, owner)):
        if feature.dim() == 2:
            feature = feature[:, :, None, None]
        elif feature.dim() != 4:
            raise DistillError(
                f"{owner} needs feature maps [B, C, H, W] (or vectors [B, C]), but {role} layer "
                f"'{layer}' gives shape {tuple(feature.shape)}; pick convolutional layers "
                "(list them with `python -m distill.layers`)"
            )
        maps.append(feature)
    return maps


def flat_features(features: Mapping[str, Tensor], layers: Iterable[str], role: str, owner: str) -> list[Tensor]:
    """The layers' outputs flattened to ``[B, -1]``."""
    return [f.reshape(f.shape[0], -1) for f in read_features(features, list(layers), role, owner)]


def connector(in_channels: int, out_channels: int, size: Sequence[int] | None = None) -> nn.Sequential:
    """A 1×1 convolution (no bias) and BatchNorm; adaptive average pooling to ``size`` first if given."""
    layers: list[nn.Module] = [] if size is None else [nn.AdaptiveAvgPool2d(tuple(size))]
    layers += [nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False), nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers)


def require_built(built: bool, owner: str) -> None:
    if not built:
        raise DistillError(
            f"{owner}'s parameters are not built yet: call DistillationModule.build(batch) before "
            "training by hand (Trainer.fit does it)"
        )


def one_layer(layers: tuple[str, ...], owner: str, argument: str) -> str:
    if len(layers) != 1:
        raise DistillError(f"{owner}: {argument} must name one layer, got {list(layers)}")
    return layers[0]
