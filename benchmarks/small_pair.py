"""The benchmark's small pair: a 1-D CNN teacher and an MLP 40-100-100-10 student on MNIST-1D-shaped inputs.

Defined here, not taken from distill, so that the benchmark measures the machinery
around the step and not whichever models the library ships. Both take a batch of
40-long signals, shape ``(batch, 40)``, as MNIST-1D has them.
"""

from __future__ import annotations

from torch import Tensor, nn

SIGNAL_LENGTH = 40


class ConvTeacher1d(nn.Module):
    """Three strided 1-D convolutions and a linear head (about 9k parameters with 10 classes)."""

    def __init__(self, num_classes: int = 10, channels: int = 25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        # 40 -> 19 -> 10 -> 5 positions
        self.head = nn.Linear(channels * 5, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x.unsqueeze(1)))


def mlp_student(num_classes: int = 10, hidden: int = 100) -> nn.Module:
    """The MLP 40-100-100-10."""
    return nn.Sequential(
        nn.Linear(SIGNAL_LENGTH, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


#: model name -> builder taking ``num_classes``
SMALL_MODELS = {"cnn1d": ConvTeacher1d, "mlp": mlp_student}
