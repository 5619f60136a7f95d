"""NST: Huang & Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer" (2017)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.errors import DistillError
from distill.features import layer_pairs
from distill.losses._maps import feature_maps
from distill.losses.base import LossTerm, StepOutputs
from distill.losses.functional import nst_loss


class NST(LossTerm):
    """Match the distribution of the student's channel activation patterns to the teacher's (MMD).

    For each layer pair, every channel's map, flattened and L2-normalised, is
    a sample; the term is the squared maximum mean discrepancy between the
    student's and the teacher's channels with the polynomial kernel
    :math:`(x^\\top y + c)^d` (:func:`~distill.losses.functional.nst_loss`),
    summed over the pairs. Channel counts may differ; no parameters are
    learned. Spatial sizes that differ are pooled to the smaller.

    Args:
        student_layer: the student's layer, or a list of them.
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        degree: the kernel's degree :math:`d` (2 in the paper).
        c: the kernel's constant :math:`c` (0 in the paper).
        weight: the term's weight in the total loss (50 in the CRD paper's benchmark).
    """

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        degree: int = 2,
        c: float = 0.0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        self.student_layers, self.teacher_layers = layer_pairs(student_layer, teacher_layer, "NST")
        if isinstance(degree, bool) or int(degree) != degree or degree < 1:
            raise DistillError(f"NST: degree must be a whole number >= 1, got {degree!r}; the paper uses 2")
        self.degree, self.c = int(degree), float(c)

    def compute(self, outputs: StepOutputs) -> Tensor:
        students = feature_maps(outputs.student_features, self.student_layers, "student", "NST")
        teachers = feature_maps(outputs.teacher_features, self.teacher_layers, "teacher", "NST")
        return sum(nst_loss(s, t, self.degree, self.c) for s, t in zip(students, teachers))

    def extra_repr(self) -> str:
        return (
            f"student_layer={list(self.student_layers)}, teacher_layer={list(self.teacher_layers)}, "
            f"degree={self.degree}, c={self.c}, weight={self.weight}"
        )
