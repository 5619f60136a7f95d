"""ReviewKD: Chen et al., "Distilling Knowledge via Knowledge Review" (CVPR 2021)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.errors import DistillError
from distill.losses._maps import require_built
from distill.losses.base import StepOutputs
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import hcl_loss


class ABF(nn.Module):
    """Attention-based fusion: one level of ReviewKD's residual review path.

    The student's map goes through a 1×1 conv and BatchNorm to ``mid_channels``;
    if ``fuse``, it is blended with the deeper level's output (upsampled, nearest)
    by two sigmoid attention maps computed from both. The result, resized to
    the teacher's height and width, is the residual passed to the next
    (shallower) level; a 3×3 conv and BatchNorm of it to ``out_channels`` is
    compared with the teacher.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fuse: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1, bias=False), nn.BatchNorm2d(mid_channels))
        self.conv2 = nn.Sequential(
            nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.att_conv = (
            nn.Sequential(nn.Conv2d(2 * mid_channels, 2, 1), nn.Sigmoid()) if fuse else None
        )
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: Tensor, residual: Tensor | None, out_size: Sequence[int]) -> tuple[Tensor, Tensor]:
        x = self.conv1(x)
        if self.att_conv is not None:
            residual = F.interpolate(residual, size=tuple(x.shape[2:]), mode="nearest")
            attention = self.att_conv(torch.cat([x, residual], dim=1))
            x = x * attention[:, 0:1] + residual * attention[:, 1:2]
        if tuple(x.shape[2:]) != tuple(out_size):
            x = F.interpolate(x, size=tuple(out_size), mode="nearest")
        return self.conv2(x), x


class ReviewKD(FeatureTerm):
    """Knowledge review: each teacher level is matched by a fusion of the student's same and deeper levels.

    Give the levels from shallow to deep (e.g. ``layer1`` … ``layer4``,
    ``avgpool`` of torchvision ResNets, as the official code uses the stage
    outputs and the pooled feature). Starting from the deepest, an
    :class:`ABF` module per level fuses the student's map with the fused
    result of the level below; the outputs are compared with the teacher's
    maps of the same levels by the hierarchical context loss
    (:func:`~distill.losses.functional.hcl_loss`). The ABF modules are built
    from the first batch's shapes and trained with the student.

    The official code compares with the teacher's pre-activation stage
    outputs; torchvision models only expose the outputs after the ReLU, which
    are compared here. It warms the term up linearly over 20 epochs
    (mdistiller); add a weight schedule for that (``schedule:`` in the config,
    :class:`~distill.losses.schedules.LinearWarmup`).

    Args:
        student_layer: the student's levels, shallow to deep.
        teacher_layer: the teacher's levels, matched by position; the student's names by default.
        mid_channels: the ABF modules' width; ``min(512, channels of the deepest student level)``
            by default, as mdistiller.
        weight: the term's weight in the total loss (1.0).
    """

    feature_form = "maps"
    repr_fields = ("mid_channels",)
    needs_build = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        mid_channels: int | None = None,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        if mid_channels is not None and (isinstance(mid_channels, bool) or int(mid_channels) != mid_channels or mid_channels < 1):
            raise DistillError(f"ReviewKD: mid_channels must be a whole number >= 1 or null, got {mid_channels!r}")
        self.mid_channels = None if mid_channels is None else int(mid_channels)
        self.abfs = nn.ModuleList()

    def build(self, outputs: StepOutputs) -> None:
        students, teachers = self.features(outputs)
        mid = self.mid_channels or min(512, students[-1].shape[1])
        last = len(students) - 1
        self.abfs = nn.ModuleList(
            ABF(s.shape[1], mid, t.shape[1], fuse=i < last).to(s.device)
            for i, (s, t) in enumerate(zip(students, teachers))
        )

    def compute(self, outputs: StepOutputs) -> Tensor:
        require_built(len(self.abfs) == len(self.student_layers), "ReviewKD")
        students, teachers = self.features(outputs)
        fused: list[Tensor] = [students[0]] * len(students)
        residual = None
        for i in reversed(range(len(students))):  # from the deepest level up
            fused[i], residual = self.abfs[i](students[i], residual, teachers[i].shape[2:])
        return hcl_loss(fused, teachers)
