"""The base of the terms that read named layers of both models, pair by pair."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from distill.errors import DistillError
from distill.features import layer_pairs, read_features
from distill.losses._maps import feature_maps, flat_features, one_layer, require_built
from distill.losses.adapters import build_adapter
from distill.losses.base import LossTerm, StepOutputs

# how a term wants each captured layer output: as it is, as [B, C, H, W] maps, or flattened to [B, -1]
_READERS = {"as_is": read_features, "maps": feature_maps, "flat": flat_features}


class FeatureTerm(LossTerm):
    """A term on the outputs of student and teacher layers matched by position.

    The base holds the layer plumbing: the names (the teacher's default to the
    student's), reading the captured outputs in the form ``feature_form`` names,
    and the ``student_layer=..., teacher_layer=...`` part of the repr. A term
    with one loss per layer pair implements :meth:`pair_loss` (the pairs are
    summed); a term with learned parts (adapters, heads) overrides :meth:`compute`.

    Args:
        student_layer: a student layer, or a list of them.
        teacher_layer: the teacher's layer(s), matched by position; the student's names by default.
        weight: the term's weight in the total loss.
    """

    #: ``"as_is"``, ``"maps"`` (``[B, C, H, W]``; vectors become ``[B, C, 1, 1]``) or ``"flat"`` (``[B, -1]``)
    feature_form: str = "as_is"
    #: the term reads exactly one layer of each model
    one_layer_only: bool = False

    def __init__(
        self, student_layer: str | Iterable[str], teacher_layer: str | Iterable[str] | None = None, weight: float = 1.0
    ) -> None:
        super().__init__(weight)
        owner = type(self).__name__
        self.student_layers, self.teacher_layers = layer_pairs(student_layer, teacher_layer, owner)
        if self.one_layer_only:
            one_layer(self.student_layers, owner, "student_layer")

    def features(self, outputs: StepOutputs) -> tuple[list[Tensor], list[Tensor]]:
        """The student's and the teacher's captured outputs of the term's layers, in order."""
        read, owner = _READERS[self.feature_form], type(self).__name__
        students = read(outputs.student_features, self.student_layers, "student", owner)
        teachers = read(outputs.teacher_features, self.teacher_layers, "teacher", owner)
        return students, teachers

    def pair_adapters(self, outputs: StepOutputs) -> nn.ModuleList:
        """One adapter per layer pair, from a first batch's shapes (:func:`~distill.losses.adapters.build_adapter`)."""
        students, teachers = self.features(outputs)
        return nn.ModuleList(
            build_adapter(s.shape, t.shape).to(device=s.device, dtype=s.dtype) for s, t in zip(students, teachers)
        )

    def require_pair_adapters(self, adapters: nn.ModuleList) -> None:
        """The one-line error of a term used before :meth:`pair_adapters` built its adapters."""
        require_built(len(adapters) == len(self.student_layers), type(self).__name__)

    def pair_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        """The term on one pair of layer outputs."""
        raise DistillError(f"{type(self).__name__} implements neither pair_loss nor compute")

    def compute(self, outputs: StepOutputs) -> Tensor:
        return sum(self.pair_loss(s, t) for s, t in zip(*self.features(outputs)))

    def extra_repr(self) -> str:
        if self.one_layer_only:
            layers = f"student_layer={self.student_layers[0]}, teacher_layer={self.teacher_layers[0]}"
        else:
            layers = f"student_layer={list(self.student_layers)}, teacher_layer={list(self.teacher_layers)}"
        return f"{layers}, {super().extra_repr()}"
