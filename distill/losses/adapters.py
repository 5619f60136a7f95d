"""Adapters: small trainable layers that map a student feature to the teacher's shape."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from distill.errors import DistillError


def build_adapter(student_shape: Sequence[int], teacher_shape: Sequence[int]) -> nn.Module:
    """Build a layer taking student features of ``student_shape`` to ``teacher_shape``.

    Shapes include the batch dimension, which is ignored.

    * equal shapes: :class:`torch.nn.Identity` (nothing to train);
    * feature maps ``[B, C, H, W]``: a 1×1 convolution to the teacher's channels
      followed by BatchNorm, as the regressors of FitNets and later work. If
      the spatial sizes differ, the student map is first resized to the
      teacher's with adaptive average pooling (averaging when the student map is
      larger, repeating values when it is smaller);
    * vectors ``[B, D]`` and token sequences ``[B, L, D]`` of equal length: a
      linear layer on the last dimension.

    Raises:
        DistillError: for shapes it cannot map (different numbers of dimensions,
            token sequences of different lengths, ...), naming both shapes.
    """
    student, teacher = tuple(int(n) for n in student_shape), tuple(int(n) for n in teacher_shape)
    if student[1:] == teacher[1:] and len(student) >= 2:
        return nn.Identity()
    if len(student) == len(teacher) == 4:
        layers: list[nn.Module] = []
        if student[2:] != teacher[2:]:
            layers.append(nn.AdaptiveAvgPool2d(teacher[2:]))
        layers += [nn.Conv2d(student[1], teacher[1], kernel_size=1, bias=False), nn.BatchNorm2d(teacher[1])]
        return nn.Sequential(*layers)
    if len(student) == len(teacher) == 2 or (len(student) == len(teacher) == 3 and student[1] == teacher[1]):
        return nn.Linear(student[-1], teacher[-1])
    raise DistillError(
        f"cannot build an adapter from student features {list(student)} to teacher features "
        f"{list(teacher)}; adapters map [B, C, H, W] to [B, C', H', W'], [B, D] to [B, D'] and "
        "[B, L, D] to [B, L, D']: pick layers whose outputs have the same number of dimensions "
        "(list them with `python -m distill.layers`)"
    )
