"""NST: Huang & Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer" (2017)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.errors import DistillError
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import nst_loss


class NST(FeatureTerm):
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

    feature_form = "maps"
    repr_fields = ("degree", "c")

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        degree: int = 2,
        c: float = 0.0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        if isinstance(degree, bool) or int(degree) != degree or degree < 1:
            raise DistillError(f"NST: degree must be a whole number >= 1, got {degree!r}; the paper uses 2")
        self.degree, self.c = int(degree), float(c)

    def pair_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        return nst_loss(student, teacher, self.degree, self.c)
