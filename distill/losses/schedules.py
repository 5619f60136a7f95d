"""Weight schedules: how a loss term's weight changes over the training epochs.

A term's effective weight in epoch ``e`` (counted from 0) is
``term.weight * term.schedule(e)``. Attach one with
``KD(...).scheduled(LinearWarmup(epochs=5))`` or, in a config, with a
``schedule:`` entry next to the term's other settings.
"""

from __future__ import annotations

from collections.abc import Sequence

from distill.errors import DistillError


class Constant:
    """The weight as given, every epoch."""

    def __call__(self, epoch: int) -> float:
        return 1.0

    def __repr__(self) -> str:
        return "Constant()"


class LinearWarmup:
    """Rises linearly from ``1/epochs`` in epoch 0 to 1 in epoch ``epochs - 1``, then stays at 1."""

    def __init__(self, epochs: int) -> None:
        if int(epochs) < 1:
            raise DistillError(f"LinearWarmup: epochs must be at least 1, got {epochs}")
        self.epochs = int(epochs)

    def __call__(self, epoch: int) -> float:
        return min((epoch + 1) / self.epochs, 1.0)

    def __repr__(self) -> str:
        return f"LinearWarmup(epochs={self.epochs})"


class Step:
    """Multiplied by ``gamma`` at each milestone epoch: 1, then gamma, gamma², ..."""

    def __init__(self, milestones: Sequence[int], gamma: float = 0.1) -> None:
        milestones = sorted(int(m) for m in milestones)
        if not milestones or milestones[0] < 0 or float(gamma) < 0:
            raise DistillError(
                f"Step: milestones must be epochs >= 0 and gamma >= 0, got {list(milestones)} and {gamma}"
            )
        self.milestones = milestones
        self.gamma = float(gamma)

    def __call__(self, epoch: int) -> float:
        return self.gamma ** sum(epoch >= m for m in self.milestones)

    def __repr__(self) -> str:
        return f"Step(milestones={self.milestones}, gamma={self.gamma})"
