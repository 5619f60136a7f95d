"""AB: Heo et al., "Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden Neurons" (AAAI 2019)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from torch import Tensor, nn

from distill.errors import DistillError
from distill.losses._maps import connector, require_built
from distill.losses.base import StepOutputs
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import ab_loss


class AB(FeatureTerm):
    """Teach the student where the teacher's neurons switch on and off (activation boundaries).

    For each layer pair a connector (1×1 convolution and BatchNorm, after
    average pooling to the teacher's height and width if they differ) maps the
    student's map to the teacher's shape; the margin loss
    (:func:`~distill.losses.functional.ab_loss`) pushes it above ``margin``
    where the teacher's neuron is active (> 0) and below ``-margin`` where it
    is not. Layers are weighted as in the official code, ``2^(i - n + 1)`` for
    the ``i``-th of ``n`` (the deepest 1, each shallower one half the next).

    The teacher's activity is read from the layer's output. torchvision ResNet
    stages end with a ReLU, whose output is > 0 exactly where its input (the
    pre-activation the paper uses) is, so the teacher side is exact; the
    connector's output serves as the student's pre-activation. The paper uses
    AB to initialise the student before ordinary training; to stop the term
    after ``N`` epochs give it a weight schedule
    (:class:`~distill.losses.schedules.Step` with ``milestones=[N]``, ``gamma=0``).

    Args:
        student_layer: the student's layer, or a list of them (shallow to deep).
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        margin: the margin :math:`\\mu` (1.0).
        weight: the term's weight in the total loss; the official code scales
            the per-sample sums by 3/1000, which ``conf/loss/ab.yaml`` puts here.
    """

    feature_form = "maps"
    repr_fields = ("margin",)
    needs_build = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        margin: float = 1.0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        self.margin = float(margin)
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise DistillError(f"AB: margin must be a finite number >= 0, got {margin}; the paper uses 1.0")
        self.connectors = nn.ModuleList()

    def layer_weights(self) -> list[float]:
        n = len(self.student_layers)
        return [2.0 ** (i - n + 1) for i in range(n)]

    def build(self, outputs: StepOutputs) -> None:
        students, teachers = self.features(outputs)
        self.connectors = nn.ModuleList(
            connector(s.shape[1], t.shape[1], None if s.shape[2:] == t.shape[2:] else t.shape[2:]).to(s.device)
            for s, t in zip(students, teachers)
        )

    def compute(self, outputs: StepOutputs) -> Tensor:
        require_built(len(self.connectors) == len(self.student_layers), "AB")
        students, teachers = self.features(outputs)
        return sum(
            w * ab_loss(c(s), t, self.margin)
            for w, c, s, t in zip(self.layer_weights(), self.connectors, students, teachers)
        )
