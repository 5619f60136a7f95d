"""The interface every loss term implements."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from distill.errors import DistillError
from distill.losses.functional._common import check_temperature  # noqa: F401  (the one rule; the terms import it from here)
from distill.losses.schedules import Constant


@dataclass
class StepOutputs:
    """What one forward pass of both models produced, as the loss terms see it.

    ``student`` and ``teacher`` are the models' outputs (logits for
    classifiers); ``labels`` and ``index`` are ``None`` when the batch has none.
    """

    student: Tensor
    teacher: Tensor | None = None
    labels: Tensor | None = None
    index: Tensor | None = None
    student_features: dict[str, Tensor] = field(default_factory=dict)
    teacher_features: dict[str, Tensor] = field(default_factory=dict)
    #: ``[B, P, 3]`` aligned (student, teacher, exact) positions when the teacher reads another tokenization
    alignment: Tensor | None = None
    #: what the token terms divide their summed loss by, when set (the global batch's per-token mean under DDP,
    #: see :mod:`distill.lm.ddp_token_normalizer`); ``None``: each term's own number of loss tokens
    token_normalizer: float | Tensor | None = None


class LossTerm(nn.Module, metaclass=abc.ABCMeta):
    """One weighted term of the distillation objective.

    Subclasses implement :meth:`compute` and set the class flags that say what
    the term reads, so the module can check a batch before using it.
    """

    #: the term reads ``outputs.labels``
    needs_labels: bool = False
    #: the term reads the teacher's outputs (False lets training skip the teacher)
    needs_teacher: bool = True
    #: the term reads each sample's index in the training set (``outputs.index``)
    needs_index: bool = False
    #: the term compares student and teacher outputs element by element
    compares_outputs: bool = False

    #: the term builds parameters (adapters) from the shapes of a first batch, see :meth:`build`
    needs_build: bool = False
    #: the settings :meth:`extra_repr` shows before the weight: attribute names, or ``"label=attribute"``
    repr_fields: tuple[str, ...] = ()

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        #: dotted names of the layers whose outputs the term reads (``outputs.student_features[name]``)
        self.student_layers: tuple[str, ...] = ()
        self.teacher_layers: tuple[str, ...] = ()
        weight = float(weight)
        if not math.isfinite(weight) or weight < 0:
            raise DistillError(
                f"{type(self).__name__}: weight must be a finite number >= 0, got {weight}; "
                "set e.g. weight=0.5 (use 0 to switch the term off)"
            )
        self.weight = weight
        self.schedule: Callable[[int], float] = Constant()

    @abc.abstractmethod
    def compute(self, outputs: StepOutputs) -> Tensor:
        """Return the unweighted scalar value of the term."""

    def per_sample(self, outputs: StepOutputs) -> Tensor | None:
        """One unweighted value per sample (``[B, ...]``), or ``None`` when the term has no such form.

        Terms that compare samples with each other (relations, contrastive
        banks) or read whole batches return ``None``.
        """
        return None

    def build(self, outputs: StepOutputs) -> None:
        """Create parameters (adapters, heads) from the shapes in a first batch's outputs.

        Called once, before the optimizer is made, for terms with ``needs_build``.
        """

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the module as each training epoch starts (for schedules such as warm-ups)."""

    def scheduled(self, schedule: Callable[[int], float]) -> LossTerm:
        """Attach a weight schedule (see :mod:`distill.losses.schedules`); returns the term."""
        self.schedule = schedule
        return self

    def weight_at(self, epoch: int) -> float:
        """The term's weight in training epoch ``epoch``."""
        return self.weight * float(self.schedule(epoch))

    def forward(self, outputs: StepOutputs) -> Tensor:
        return self.compute(outputs)

    def extra_repr(self) -> str:
        labelled = (field.partition("=") for field in self.repr_fields)
        settings = [f"{label}={getattr(self, attribute or label)}" for label, _, attribute in labelled]
        return ", ".join([*settings, f"weight={self.weight}"])


def require_teacher(outputs: StepOutputs, owner: str) -> Tensor:
    if outputs.teacher is None:
        raise DistillError(f"{owner} needs the teacher's outputs, but none were computed")
    return outputs.teacher


def require_labels(outputs: StepOutputs, owner: str) -> Tensor:
    if outputs.labels is None:
        raise DistillError(
            f"loss term {owner} needs labels, but the batch has none; "
            "remove the term (e.g. ~loss.ce) or use labelled data"
        )
    return outputs.labels
