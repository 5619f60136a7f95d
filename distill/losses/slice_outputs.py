"""SliceOutputs: any logit term on some columns of the outputs, e.g. one term per teacher of an ensemble."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import Tensor

from distill.errors import DistillError
from distill.losses.base import LossTerm, StepOutputs


class SliceOutputs(LossTerm):
    """Apply ``term`` to columns ``[start, stop)`` of the teacher's and/or the student's outputs.

    With a :class:`~distill.teachers.TeacherEnsemble` that concatenates its
    members (``combine="concat"``), member ``i``'s logits are one block of
    columns: a ``SliceOutputs`` per member gives one term per teacher, each
    with its own weight and settings. Slicing the student as well maps a
    teacher to one output head of a multi-head student.

    Args:
        term: the wrapped logit term (KD, BCEKD, ...); its weight is this term's weight.
        teacher_columns: ``[start, stop]`` of the teacher's class dimension, or ``None`` for all.
        student_columns: ``[start, stop]`` of the student's class dimension, or ``None`` for all.
        dim: the class dimension.
    """

    def __init__(
        self,
        term: LossTerm,
        teacher_columns: Sequence[int] | None = None,
        student_columns: Sequence[int] | None = None,
        dim: int = -1,
    ) -> None:
        if not isinstance(term, LossTerm):
            raise DistillError(f"SliceOutputs: term must be a distill.losses.LossTerm, got {type(term).__name__}")
        if term.teacher_layers or term.student_layers or term.needs_build:
            raise DistillError(
                f"SliceOutputs: {type(term).__name__} reads layers or builds adapters; only logit terms can be sliced"
            )
        super().__init__(term.weight)
        self.term = term
        self.teacher_columns = _columns(teacher_columns, "teacher_columns")
        self.student_columns = _columns(student_columns, "student_columns")
        self.dim = dim
        # what the module checks before calling a term: the wrapped term's needs
        self.needs_labels = term.needs_labels
        self.needs_teacher = term.needs_teacher
        self.needs_index = term.needs_index
        self.compares_outputs = False  # the sliced outputs are compared, not the whole ones

    def _sliced(self, outputs: StepOutputs) -> StepOutputs:
        teacher = outputs.teacher
        if teacher is not None and self.teacher_columns is not None:
            teacher = _take(teacher, self.teacher_columns, self.dim, "teacher")
        student = outputs.student
        if self.student_columns is not None:
            student = _take(student, self.student_columns, self.dim, "student")
        return replace(outputs, student=student, teacher=teacher)

    def compute(self, outputs: StepOutputs) -> Tensor:
        return self.term.compute(self._sliced(outputs))

    def per_sample(self, outputs: StepOutputs) -> Tensor | None:
        return self.term.per_sample(self._sliced(outputs))

    def on_epoch_start(self, epoch: int) -> None:
        self.term.on_epoch_start(epoch)

    def extra_repr(self) -> str:
        return f"teacher_columns={self.teacher_columns}, student_columns={self.student_columns}, weight={self.weight}"


def _columns(columns: Sequence[int] | None, what: str) -> tuple[int, int] | None:
    if columns is None:
        return None
    values = list(columns)
    if len(values) != 2 or not all(isinstance(v, int) for v in values) or not 0 <= values[0] < values[1]:
        raise DistillError(
            f"SliceOutputs: {what} must be [start, stop] with 0 <= start < stop, got {values}; e.g. {what}=[0,10]"
        )
    return values[0], values[1]


def _take(outputs: Tensor, columns: tuple[int, int], dim: int, role: str) -> Tensor:
    start, stop = columns
    if stop > outputs.shape[dim]:
        raise DistillError(
            f"SliceOutputs: columns [{start}, {stop}) of the {role}'s outputs, but they have "
            f"{outputs.shape[dim]}; check {role}_columns"
        )
    return outputs.narrow(dim, start, stop - start)
