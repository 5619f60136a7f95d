"""The base of the terms that compare the student's outputs with the teacher's through one pure function."""

from __future__ import annotations

import abc

from torch import Tensor

from distill.losses.base import LossTerm, StepOutputs, check_temperature, require_teacher


class LogitTerm(LossTerm):
    """A term whose value is ``loss(student outputs, teacher outputs)``, per sample or averaged.

    A subclass names its paper and implements :meth:`loss` with a function of
    :mod:`distill.losses.functional`; the base reads the teacher's outputs and
    gives :meth:`compute` (the mean) and :meth:`per_sample` (``reduction="none"``).

    Args:
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    compares_outputs = True

    def __init__(self, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(weight)
        self.dim = dim

    @abc.abstractmethod
    def loss(self, student: Tensor, teacher: Tensor, reduction: str) -> Tensor:
        """The term on the two models' outputs, reduced by ``"mean"`` or ``"none"``."""

    def compute(self, outputs: StepOutputs) -> Tensor:
        return self.loss(outputs.student, require_teacher(outputs, type(self).__name__), "mean")

    def per_sample(self, outputs: StepOutputs) -> Tensor:
        return self.loss(outputs.student, require_teacher(outputs, type(self).__name__), "none")


class SoftenedLogitTerm(LogitTerm):
    """A :class:`LogitTerm` on temperature-softened distributions; the temperature is checked here, once.

    Args:
        temperature: softening temperature T > 0.
        weight: the term's weight in the total loss.
        dim: the class dimension of the outputs.
    """

    repr_fields = ("temperature",)

    def __init__(self, temperature: float = 1.0, weight: float = 1.0, dim: int = -1) -> None:
        super().__init__(weight, dim)
        self.temperature = check_temperature(temperature, type(self).__name__)
