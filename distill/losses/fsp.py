"""FSP: Yim et al., "A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer Learning" (CVPR 2017)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from distill.errors import DistillError
from distill.losses._maps import connector, feature_maps, require_built
from distill.losses.base import LossTerm, StepOutputs
from distill.losses.functional import fsp_loss


def _pairs(pairs: Sequence[Sequence[str]] | None, argument: str) -> tuple[tuple[str, str], ...]:
    checked = []
    for pair in pairs or ():
        if isinstance(pair, str) or len(pair) != 2 or not all(isinstance(n, str) and n for n in pair):
            raise DistillError(
                f"FSP: {argument} must be a list of [start, end] layer pairs, e.g. [[layer1, layer2]], got {pairs!r}"
            )
        checked.append((pair[0], pair[1]))
    if not checked:
        raise DistillError(f"FSP: {argument} must hold at least one [start, end] layer pair, got {pairs!r}")
    return tuple(checked)


class FSP(LossTerm):
    """Match the student's FSP matrices (flows between two layers) to the teacher's.

    Each pair ``[start, end]`` gives the ``[C_start, C_end]`` Gram matrix of
    the two maps over spatial positions (:func:`~distill.losses.functional.fsp_matrix`;
    the larger map is pooled to the smaller when their sizes differ); the term
    is the mean squared error between the student's and the teacher's
    matrices, summed over the pairs. The paper's student and teacher have the
    same channel counts; where they differ, the student's map goes through a
    1×1 convolution and BatchNorm to the teacher's count (one per map of each
    pair, built from the first batch and trained with the student).

    The paper uses FSP to initialise the student before ordinary training; to
    stop the term after ``N`` epochs give it a weight schedule
    (:class:`~distill.losses.schedules.Step` with ``milestones=[N]``, ``gamma=0``).

    Args:
        student_pairs: the student's ``[start, end]`` layer pairs.
        teacher_pairs: the teacher's pairs, matched by position; the student's by default.
        weight: the term's weight in the total loss.
    """

    needs_build = True

    def __init__(
        self,
        student_pairs: Sequence[Sequence[str]],
        teacher_pairs: Sequence[Sequence[str]] | None = None,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        self.student_pairs = _pairs(student_pairs, "student_pairs")
        self.teacher_pairs = self.student_pairs if teacher_pairs is None else _pairs(teacher_pairs, "teacher_pairs")
        if len(self.student_pairs) != len(self.teacher_pairs):
            raise DistillError(
                f"FSP: student_pairs and teacher_pairs are matched by position, but {len(self.student_pairs)} "
                f"and {len(self.teacher_pairs)} pairs were given"
            )
        self.student_layers = tuple(dict.fromkeys(n for pair in self.student_pairs for n in pair))
        self.teacher_layers = tuple(dict.fromkeys(n for pair in self.teacher_pairs for n in pair))
        self.adapters = nn.ModuleList()

    def _maps(self, outputs: StepOutputs) -> tuple[list[Tensor], list[Tensor]]:
        """The student's and the teacher's maps, two per pair (start, end), in pair order."""
        students = feature_maps(outputs.student_features, [n for p in self.student_pairs for n in p], "student", "FSP")
        teachers = feature_maps(outputs.teacher_features, [n for p in self.teacher_pairs for n in p], "teacher", "FSP")
        return students, teachers

    def build(self, outputs: StepOutputs) -> None:
        students, teachers = self._maps(outputs)
        self.adapters = nn.ModuleList(
            (nn.Identity() if s.shape[1] == t.shape[1] else connector(s.shape[1], t.shape[1])).to(s.device)
            for s, t in zip(students, teachers)
        )

    def compute(self, outputs: StepOutputs) -> Tensor:
        require_built(len(self.adapters) == 2 * len(self.student_pairs), "FSP")
        students, teachers = self._maps(outputs)
        students = [adapter(s) for adapter, s in zip(self.adapters, students)]
        return sum(
            fsp_loss(students[2 * i], students[2 * i + 1], teachers[2 * i], teachers[2 * i + 1])
            for i in range(len(self.student_pairs))
        )

    def extra_repr(self) -> str:
        return (
            f"student_pairs={[list(p) for p in self.student_pairs]}, "
            f"teacher_pairs={[list(p) for p in self.teacher_pairs]}, weight={self.weight}"
        )
