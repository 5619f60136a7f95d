"""The models of the MNIST-1D paper (Greydanus 2020, "Scaling down deep learning"), built by name.

``mnist1d_cnn`` (the paper's 3-layer 1-D CNN, ~94 % in the paper), ``mnist1d_mlp`` (two hidden
layers of 100, ~68 %), ``mnist1d_gru`` (a one-layer GRU over the 40 steps) and
``mnist1d_logistic`` (logistic regression, ~32 %). Inputs are ``[N, 1, 40]`` (or ``[N, 40]``).
Stages are named ``layer1``, ``layer2``, … and the last hidden feature ``features``, so the
feature methods' configs can name them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from distill.errors import DistillError
from distill.models.factory import ModelFamily, register_family

#: the length of an MNIST-1D signal
SIGNAL_LENGTH = 40


def _as_channels(x: Tensor) -> Tensor:
    return x.unsqueeze(1) if x.dim() == 2 else x


class MNIST1DCNN(nn.Module):
    """Three stride-2 1-D convolutions of ``channels`` filters (kernels 5, 3, 3), then a linear layer."""

    def __init__(self, num_classes: int = 10, channels: int = 25, length: int = SIGNAL_LENGTH) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU())
        self.layer3 = nn.Sequential(nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU())
        out = length
        for kernel in (5, 3, 3):
            out = (out + 2 - kernel) // 2 + 1
        self.features = nn.Flatten()
        self.fc = nn.Linear(channels * out, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(self.layer3(self.layer2(self.layer1(_as_channels(x))))))


class MNIST1DMLP(nn.Module):
    """Two hidden layers of ``hidden`` ReLU units."""

    def __init__(self, num_classes: int = 10, hidden: int = 100, length: int = SIGNAL_LENGTH) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(nn.Flatten(), nn.Linear(length, hidden), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.features = nn.Identity()
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(self.layer2(self.layer1(x))))


class MNIST1DGRU(nn.Module):
    """A one-layer GRU reading the signal one value per step; its last hidden state is classified."""

    def __init__(self, num_classes: int = 10, hidden: int = 64) -> None:
        super().__init__()
        self.layer1 = nn.GRU(1, hidden, batch_first=True)
        self.features = nn.Identity()
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        steps = _as_channels(x).transpose(1, 2)  # [N, 40, 1]
        _, last = self.layer1(steps)
        return self.fc(self.features(last[-1]))


class MNIST1DLogistic(nn.Module):
    """Logistic regression on the 40 values."""

    def __init__(self, num_classes: int = 10, length: int = SIGNAL_LENGTH) -> None:
        super().__init__()
        self.features = nn.Flatten()
        self.fc = nn.Linear(length, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


#: model name -> class taking num_classes and the options below
MNIST1D_MODELS: dict[str, Callable[..., nn.Module]] = {
    "mnist1d_cnn": MNIST1DCNN,
    "mnist1d_mlp": MNIST1DMLP,
    "mnist1d_gru": MNIST1DGRU,
    "mnist1d_logistic": MNIST1DLogistic,
}


def build_mnist1d_model(name: str, num_classes: int, weights: str | None = None, **options: Any) -> nn.Module:
    """The MNIST-1D model ``name``; options are its constructor's (``channels``, ``hidden``, ``length``)."""
    if weights is not None:
        raise DistillError(
            f"MNIST-1D model '{name}' has no pretrained weights (got weights={weights}); leave weights unset "
            "to train it first, or give teacher.checkpoint=PATH"
        )
    try:
        return MNIST1D_MODELS[name](num_classes, **options)
    except TypeError as error:
        raise DistillError(f"MNIST-1D model '{name}' does not take {sorted(options)}: {error}") from None


MNIST1D_FAMILY = register_family(
    ModelFamily("mnist1d", claims=MNIST1D_MODELS.__contains__, build=build_mnist1d_model, names=MNIST1D_MODELS.keys)
)

__all__ = ["MNIST1D_MODELS", "MNIST1DCNN", "MNIST1DGRU", "MNIST1DLogistic", "MNIST1DMLP", "build_mnist1d_model"]
