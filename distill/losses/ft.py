"""FT: Kim et al., "Paraphrasing Complex Network: Network Compression via Factor Transfer" (NeurIPS 2018)."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from distill.errors import DistillError
from distill.losses._maps import require_built
from distill.losses.base import StepOutputs
from distill.losses.feature_term import FeatureTerm
from distill.losses.functional import ft_loss
from distill.losses.functional.relations import pool_to_smaller


def _conv_block(conv: type[nn.Module], in_channels: int, out_channels: int) -> list[nn.Module]:
    return [conv(in_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.1)]


class Paraphraser(nn.Module):
    """The teacher-side auto-encoder: three 3×3 conv blocks down to the factor, three transposed-conv blocks back."""

    def __init__(self, channels: int, factor_channels: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            *_conv_block(nn.Conv2d, channels, channels),
            *_conv_block(nn.Conv2d, channels, factor_channels),
            *_conv_block(nn.Conv2d, factor_channels, factor_channels),
        )
        self.decoder = nn.Sequential(
            *_conv_block(nn.ConvTranspose2d, factor_channels, factor_channels),
            *_conv_block(nn.ConvTranspose2d, factor_channels, channels),
            *_conv_block(nn.ConvTranspose2d, channels, channels),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        factor = self.encoder(x)
        return factor, self.decoder(factor)


def translator(channels: int, factor_channels: int) -> nn.Sequential:
    """The student-side encoder: three 3×3 conv blocks to the teacher's factor width."""
    return nn.Sequential(
        *_conv_block(nn.Conv2d, channels, channels),
        *_conv_block(nn.Conv2d, channels, factor_channels),
        *_conv_block(nn.Conv2d, factor_channels, factor_channels),
    )


class FT(FeatureTerm):
    """Match the student's "translated" factor to the teacher's "paraphrased" factor.

    A paraphraser (a convolutional auto-encoder) encodes the teacher's map
    into a factor with ``rate`` times its channels; a translator encodes the
    student's map into a factor of the same width. The term is the distance
    between the L2-normalised factors (:func:`~distill.losses.functional.ft_loss`,
    p = 1). If the spatial sizes differ, the larger factor is average-pooled.

    **The paraphraser's training differs from the paper.** The paper trains
    the paraphraser first, alone, to reconstruct the teacher's features, then
    freezes it while the student learns. Here it is built from the first batch
    and trained *jointly*: while training, the term adds the paraphraser's
    reconstruction error (mean squared error) so that it enters the total loss
    with weight ``reconstruction_weight`` whatever the term's own weight and
    schedule (its value is divided by the current weight), and the teacher's
    factor is detached, so the FT loss never moves the paraphraser and the
    reconstruction never moves the student. The student therefore chases
    factors that change while the paraphraser learns, mostly early in
    training; in exchange there is no separate pre-training run. Outside
    training (validation), and while the term's current weight is 0, the
    reconstruction is left out and the paraphraser does not learn.

    Args:
        student_layer: the student's layer (one; the paper uses the last group's output).
        teacher_layer: the teacher's layer; the student's name by default.
        rate: the paraphrase rate :math:`k`, factor channels over teacher channels (0.5).
        p: the distance's exponent (1 in the paper).
        reconstruction_weight: the weight of the paraphraser's reconstruction loss in the total.
        weight: the term's weight in the total loss (500 in the authors' code).
    """

    feature_form = "maps"
    one_layer_only = True
    repr_fields = ("rate", "p", "reconstruction_weight")
    needs_build = True

    def __init__(
        self,
        student_layer: str,
        teacher_layer: str | None = None,
        rate: float = 0.5,
        p: float = 1.0,
        reconstruction_weight: float = 1.0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(student_layer, teacher_layer, weight)
        self.rate, self.p, self.reconstruction_weight = float(rate), float(p), float(reconstruction_weight)
        if not 0 < self.rate <= 1 or not (math.isfinite(self.p) and self.p > 0):
            raise DistillError(f"FT: rate must be in (0, 1] and p > 0, got rate={rate} and p={p}; the paper uses 0.5 and 1")
        if not (math.isfinite(self.reconstruction_weight) and self.reconstruction_weight >= 0):
            raise DistillError(f"FT: reconstruction_weight must be a finite number >= 0, got {reconstruction_weight}")
        self.paraphraser: Paraphraser | None = None
        self.translator: nn.Module | None = None
        self.current_epoch = 0

    def on_epoch_start(self, epoch: int) -> None:
        self.current_epoch = int(epoch)

    def build(self, outputs: StepOutputs) -> None:
        (student,), (teacher,) = self.features(outputs)
        factor_channels = max(1, round(teacher.shape[1] * self.rate))
        self.paraphraser = Paraphraser(teacher.shape[1], factor_channels).to(teacher.device)
        self.translator = translator(student.shape[1], factor_channels).to(student.device)

    def compute(self, outputs: StepOutputs) -> Tensor:
        require_built(self.paraphraser is not None, "FT")
        (student,), (teacher,) = self.features(outputs)
        teacher_factor, reconstruction = self.paraphraser(teacher)
        student_factor, teacher_factor = pool_to_smaller(self.translator(student), teacher_factor.detach())
        loss = ft_loss(student_factor, teacher_factor, self.p)
        current_weight = self.weight_at(self.current_epoch)
        if self.training and current_weight > 0 and self.reconstruction_weight > 0:
            reconstruction_error = F.mse_loss(reconstruction.float(), teacher.float())
            loss = loss + reconstruction_error * (self.reconstruction_weight / current_weight)
        return loss
