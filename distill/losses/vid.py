"""VID: Ahn et al., "Variational Information Distillation for Knowledge Transfer" (CVPR 2019)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.errors import DistillError
from distill.losses._maps import require_built
from distill.losses.base import StepOutputs
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import vid_loss
from distill.losses.functional.relations import pool_to_smaller


def _regressor(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(hidden, out_channels, 1, bias=False),
    )


class VID(FeatureTerm):
    """Maximise a variational lower bound on the mutual information of student and teacher features.

    For each layer pair the teacher's map is modelled as a Gaussian whose mean
    a regressor (three 1×1 convolutions with ReLUs between them) predicts from
    the student's map, with one learned variance per channel,
    :math:`\\sigma_c^2 = \\mathrm{softplus}(\\alpha_c) + \\epsilon`. The term is
    the mean negative log-likelihood (:func:`~distill.losses.functional.vid_loss`),
    summed over the pairs. Regressors and variances are built from the first
    batch's shapes and trained with the student. If the spatial sizes differ,
    the larger map is average-pooled to the smaller, as in the reference code.

    Args:
        student_layer: the student's layer, or a list of them.
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        init_variance: the variances' starting value (5.0 in the reference code).
        eps: :math:`\\epsilon`, the variances' floor (1e-5).
        hidden_channels: the regressors' width; the teacher's channel count by default.
        weight: the term's weight in the total loss (1.0).
    """

    feature_form = "maps"
    repr_fields = ("init_variance", "eps")
    needs_build = True

    def __init__(
        self,
        student_layer: str | Iterable[str],
        teacher_layer: str | Iterable[str] | None = None,
        init_variance: float = 5.0,
        eps: float = 1e-5,
        hidden_channels: int | None = None,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        self.init_variance, self.eps = float(init_variance), float(eps)
        if not (math.isfinite(self.eps) and self.eps > 0 and math.isfinite(self.init_variance) and self.init_variance > self.eps):
            raise DistillError(
                f"VID: eps must be > 0 and init_variance > eps, got eps={eps} and init_variance={init_variance}; "
                "the reference code uses 1e-5 and 5.0"
            )
        if hidden_channels is not None and (isinstance(hidden_channels, bool) or int(hidden_channels) != hidden_channels or hidden_channels < 1):
            raise DistillError(f"VID: hidden_channels must be a whole number >= 1 or null, got {hidden_channels!r}")
        self.hidden_channels = None if hidden_channels is None else int(hidden_channels)
        self.regressors = nn.ModuleList()
        self.log_scales = nn.ParameterList()

    def build(self, outputs: StepOutputs) -> None:
        students, teachers = self.features(outputs)
        start = math.log(math.expm1(self.init_variance - self.eps))  # softplus(start) + eps = init_variance
        self.regressors = nn.ModuleList(
            _regressor(s.shape[1], self.hidden_channels or t.shape[1], t.shape[1]).to(s.device)
            for s, t in zip(students, teachers)
        )
        self.log_scales = nn.ParameterList(
            nn.Parameter(torch.full((t.shape[1],), start, device=s.device)) for s, t in zip(students, teachers)
        )

    def variances(self) -> list[Tensor]:
        """The per-channel variances :math:`\\sigma_c^2` of each pair."""
        return [F.softplus(alpha) + self.eps for alpha in self.log_scales]

    def compute(self, outputs: StepOutputs) -> Tensor:
        require_built(len(self.regressors) == len(self.student_layers), "VID")
        students, teachers = self.features(outputs)
        total = 0.0
        for regressor, variance, s, t in zip(self.regressors, self.variances(), students, teachers):
            s, t = pool_to_smaller(s, t)
            total = total + vid_loss(regressor(s), t, variance)
        return total
