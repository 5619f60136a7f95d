"""What ``teacher=ensemble`` constructs: the members' configs and how their outputs combine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from distill.teachers.ensemble import TeacherEnsemble


class EnsembleSpec:
    """Several teachers as one, described before any of them exists.

    The members are obtained one by one like single teachers (checkpoint, weights, or
    trained first and cached); :meth:`ensemble` then joins the models into a
    :class:`~distill.teachers.TeacherEnsemble`.

    Args:
        members: member name → its teacher config (``name``, ``checkpoint`` or ``weights``,
            model options, ``train``, ``data``), kept as given.
        combine: ``"mean"``, ``"soft"`` or ``"concat"`` (see :class:`~distill.teachers.TeacherEnsemble`).
        temperature: :math:`T` of ``"soft"`` (use the KD term's temperature).
        member_weights: one weight per member (a mapping by name or a sequence in member order); equal when ``None``.
        train: the schedule of the members trained first (a member's own ``train`` entries override it).
        name: the display name.
    """

    def __init__(
        self,
        members: Mapping[str, Any],
        combine: str = "soft",
        temperature: float = 4.0,
        member_weights: Mapping[str, float] | Sequence[float] | None = None,
        train: Mapping[str, Any] | None = None,
        name: str = "ensemble",
    ) -> None:
        self.members = members
        self.combine = combine
        self.temperature = temperature
        self.member_weights = member_weights
        self.train = train
        self.name = name

    def ensemble(self, models: Mapping[str, nn.Module]) -> TeacherEnsemble:
        """The members' models, by name, as one teacher."""
        weights = self.member_weights
        if weights is not None:
            weights = dict(weights) if isinstance(weights, Mapping) else [float(w) for w in weights]
        return TeacherEnsemble(dict(models), combine=self.combine, weights=weights, temperature=self.temperature)
