"""Checks of the student-teacher pair given to :class:`~distill.DistillationModule`, with what to do instead.

The teacher is frozen: a module the student shares with it would be frozen too and
never train, so sharing is refused (copy the teacher first). A teacher with non-finite
weights would make every loss non-finite: it is named as the cause before training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from distill.errors import DistillError
from distill.losses.cross_entropy import CrossEntropy
from distill.models.finite import non_finite_entries


def check_pair(student: Any, teacher: Any) -> None:
    """Refuse a pair that cannot be distilled: missing models, one model twice, shared modules, a broken teacher."""
    if not isinstance(student, nn.Module):
        raise DistillError(f"the student must be a torch.nn.Module, got {_kind(student)}")
    if teacher is None:
        raise DistillError(
            "teacher is None: give the trained model to learn from (for training without a teacher, "
            "use distill.supervised.SupervisedModule)"
        )
    teachers = list(teacher.values()) if isinstance(teacher, Mapping) else list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    for member in teachers:
        if not isinstance(member, nn.Module):
            raise DistillError(f"the teacher must be a torch.nn.Module (or a list or mapping of them), got {_kind(member)}")
        if member is student:
            raise DistillError(
                "the student and the teacher are the same model; the teacher is frozen, so nothing would "
                "train: give a separate student (e.g. a fresh model, or copy.deepcopy(teacher))"
            )
        shared = _shared_tensors(student, member)
        if shared:
            raise DistillError(
                f"the student shares {len(shared)} parameter(s) or buffer(s) with the teacher (e.g. {shared[0]}); "
                "the teacher is frozen, so they would never train: give the student its own copy "
                "(student = copy.deepcopy(teacher), or build it anew)"
            )
        bad = non_finite_entries(member)
        if bad:
            raise DistillError(
                f"the teacher has non-finite weights ({len(bad)} tensor(s), e.g. {bad[0]}): it is diverged or "
                "corrupt, and every loss would be non-finite; use another teacher checkpoint"
            )


def check_labels(loss_terms: Mapping[str, Any], labels: Tensor | None, student_outputs: Tensor, class_dim: int) -> None:
    """Class-index terms need integer labels; float labels of another shape than the outputs are a mistake."""
    if labels is None or not labels.is_floating_point() or labels.shape == student_outputs.shape:
        return  # integer class indices, or one probability per class (soft labels)
    for name, term in loss_terms.items():
        if isinstance(term, CrossEntropy):
            raise DistillError(
                f"loss term '{name}' (CrossEntropy) got float labels of shape {tuple(labels.shape)}; it needs "
                "integer class indices (labels.long(), e.g. a TensorDataset of torch.int64 labels) or one "
                f"probability per class (shape {tuple(student_outputs.shape)})"
            )


def _shared_tensors(student: nn.Module, teacher: nn.Module) -> list[str]:
    teacher_tensors = {id(t) for t in (*teacher.parameters(), *teacher.buffers())}
    named = [*student.named_parameters(remove_duplicate=False), *student.named_buffers(remove_duplicate=False)]
    return [name for name, tensor in named if id(tensor) in teacher_tensors]


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def check_teacher_outputs_finite(outputs: Any, step: int) -> None:
    """When the loss is non-finite, name the teacher if only its outputs were (not the learning rate).

    Non-finite outputs of both models point at the inputs: the caller's message says so.
    """
    teacher, student = getattr(outputs, "teacher", None), getattr(outputs, "student", None)
    if (
        isinstance(teacher, Tensor) and isinstance(student, Tensor)
        and not bool(teacher.isfinite().all()) and bool(student.detach().isfinite().all())
    ):
        raise DistillError(
            f"the teacher's outputs are non-finite at step {step} (its weights are finite): the teacher is the "
            "cause, not the student's learning rate; check the teacher (its dtype: teacher.dtype=null keeps "
            "float32) and the inputs"
        )
