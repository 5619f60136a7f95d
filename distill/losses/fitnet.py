"""FitNet: Romero et al., "FitNets: Hints for Thin Deep Nets" (ICLR 2015)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from distill.losses.base import StepOutputs
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import hint_loss


class FitNet(FeatureTerm):
    """Mean squared error between adapted student features and the teacher's ("hints").

    One adapter (:func:`~distill.losses.adapters.build_adapter`, a 1×1 conv and
    BatchNorm for feature maps) per layer pair is built from the first batch's
    shapes and trained with the student. Several pairs are summed.

    Args:
        student_layer: the student's layer ("guided layer"), or a list of them.
        teacher_layer: the teacher's layer ("hint"), or a list matched by
            position; the student's names by default.
        weight: the term's weight in the total loss.
    """

    needs_build = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        self.adapters = nn.ModuleList()

    def build(self, outputs: StepOutputs) -> None:
        self.adapters = self.pair_adapters(outputs)

    def compute(self, outputs: StepOutputs) -> Tensor:
        self.require_pair_adapters(self.adapters)
        students, teachers = self.features(outputs)
        return sum(hint_loss(adapter(s), t) for adapter, s, t in zip(self.adapters, students, teachers))
