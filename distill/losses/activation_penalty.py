"""Activation penalty: Merity et al., "Revisiting Activation Regularization for Language RNNs" (2017)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from distill.features import layer_names, read_features
from distill.losses.base import LossTerm, StepOutputs
from distill.losses.functional import activation_penalty


class ActivationPenalty(LossTerm):
    """The mean of ``|f|^p`` over the student's activations, summed over layers; the teacher is not read.

    Args:
        student_layer: the student's layer, or a list of them.
        p: the exponent (2 penalises large activations, 1 favours sparse ones).
        weight: the term's weight in the total loss (the paper's α = 2).
    """

    needs_teacher = False

    def __init__(self, student_layer: str | Iterable[str], p: float = 2.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.student_layers = layer_names(student_layer, "ActivationPenalty", "student_layer")
        self.p = float(p)

    def compute(self, outputs: StepOutputs) -> Tensor:
        features = read_features(outputs.student_features, self.student_layers, "student", "ActivationPenalty")
        return sum(activation_penalty(f, self.p) for f in features)

    def extra_repr(self) -> str:
        return f"student_layer={list(self.student_layers)}, p={self.p}, weight={self.weight}"
