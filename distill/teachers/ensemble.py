"""Several teachers seen as one: their outputs averaged, mixed as soft targets, or side by side."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from distill.batch import output_logits
from distill.errors import DistillError
from distill.losses.base import check_temperature

COMBINES = ("mean", "soft", "concat")


class TeacherEnsemble(nn.Module):
    r"""Named teachers called on the same input, their logits combined into one output.

    Being one ``nn.Module``, the ensemble is frozen, hashed and moved across
    devices by :class:`~distill.DistillationModule` like any single teacher; its
    layers are named ``<member>.<layer>`` (e.g. ``"a.layer3"``), so feature terms
    read any member's layers.

    Args:
        members: a mapping of name to teacher (or a list, named ``"0"``, ``"1"``, ...).
        combine: how the members' logits ``z_i`` become the output:

            - ``"mean"``: :math:`\sum_i w_i z_i`, the weighted mean of the logits;
            - ``"soft"``: :math:`T \log \sum_i w_i\, \mathrm{softmax}(z_i / T)`, so that
              :math:`\mathrm{softmax}(\text{out} / T) = \sum_i w_i\, \mathrm{softmax}(z_i / T)`
              exactly: a softmax term at temperature :math:`T` (KD with the same T) sees the
              weighted average of the members' soft targets;
            - ``"concat"``: the logits side by side along ``dim`` (members may differ in
              width), e.g. one binary teacher per output head of the student, or one term
              per teacher (:attr:`columns` says where each member's logits are).
        weights: one weight per member (a mapping by name or a sequence in member
            order), >= 0 and normalised to sum to 1; equal weights by default. Not used by ``"concat"``.
        temperature: :math:`T` of ``"soft"``.
        dim: the class dimension of the members' outputs.
    """

    def __init__(
        self,
        members: Mapping[str, nn.Module] | Sequence[nn.Module],
        combine: str = "mean",
        weights: Mapping[str, float] | Sequence[float] | None = None,
        temperature: float = 1.0,
        dim: int = -1,
    ) -> None:
        super().__init__()
        if not isinstance(members, Mapping):
            members = {str(i): m for i, m in enumerate(members)}
        if not members:
            raise DistillError("TeacherEnsemble needs at least one member; give teacher.members={name: {...}}")
        if combine not in COMBINES:
            raise DistillError(f"TeacherEnsemble: combine must be one of {', '.join(COMBINES)}, got {combine!r}")
        self.combine = combine
        self.temperature = check_temperature(temperature, "TeacherEnsemble", typical="e.g. temperature=4")
        self.dim = dim
        #: member name → slice of the output's class dimension, set by a ``"concat"`` forward pass
        self.columns: dict[str, slice] = {}
        names = [str(k) for k in members]
        # persistent: the weighting is part of what the teacher hash identifies
        self.register_buffer("weights", _normalised_weights(weights, names))
        # each member is a direct child, so its layers are named "<member>.<layer>"
        self.member_names = [_check_member_name(name, self) for name in names]
        for name, member in zip(names, members.values()):
            self.add_module(name, member)

    def members(self) -> dict[str, nn.Module]:
        """The teachers by name, in order."""
        return {name: self.get_submodule(name) for name in self.member_names}

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        outputs = [output_logits(member(*args, **kwargs)) for member in self.members().values()]
        if self.combine == "concat":
            return self._concat(outputs)
        shapes = {tuple(o.shape) for o in outputs}
        if len(shapes) > 1:
            raise DistillError(
                f"TeacherEnsemble({self.combine!r}): the members' outputs differ in shape "
                f"({', '.join(f'{n} {tuple(o.shape)}' for n, o in zip(self.member_names, outputs))}); "
                "give them the same number of classes or use combine=concat"
            )
        return combine_logits(outputs, self.combine, self.weights, self.temperature, self.dim)

    def _concat(self, outputs: list[Tensor]) -> Tensor:
        start, columns = 0, {}
        for name, output in zip(self.member_names, outputs):
            width = output.shape[self.dim]
            columns[name] = slice(start, start + width)
            start += width
        self.columns = columns
        return torch.cat(outputs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"combine={self.combine!r}, weights={[round(w, 4) for w in self.weights.tolist()]}"


def combine_logits(
    logits: Sequence[Tensor], combine: str, weights: Tensor, temperature: float = 1.0, dim: int = -1
) -> Tensor:
    r"""Combine same-shaped logits ``z_i`` with weights ``w_i`` (summing to 1).

    ``"mean"`` returns :math:`\sum_i w_i z_i`; ``"soft"`` returns
    :math:`T \log \sum_i w_i\, \mathrm{softmax}(z_i / T)`, whose softmax at
    temperature :math:`T` is the weighted mean of the soft targets (computed with
    log-sum-exp, so it stays finite for confident members). Computed in float32.
    """
    stacked = torch.stack([z.float() for z in logits])  # [M, ...]
    w = weights.to(stacked).reshape(-1, *([1] * (stacked.dim() - 1)))
    if combine == "mean":
        return (w * stacked).sum(0)
    if combine == "soft":
        log_probs = torch.log_softmax(stacked / temperature, dim=dim if dim < 0 else dim + 1)
        return temperature * torch.logsumexp(log_probs + torch.log(w), dim=0)
    raise DistillError(f"combine_logits: combine must be 'mean' or 'soft', got {combine!r}")


def _normalised_weights(weights: Mapping[str, float] | Sequence[float] | None, names: list[str]) -> Tensor:
    if weights is None:
        values = [1.0] * len(names)
    elif isinstance(weights, Mapping):
        unknown = sorted(set(map(str, weights)) - set(names))
        if unknown:
            raise DistillError(
                f"TeacherEnsemble: weights name unknown member(s) {unknown}; the members are {names}"
            )
        values = [float(weights.get(n, 1.0)) for n in names]
    else:
        values = [float(w) for w in weights]
        if len(values) != len(names):
            raise DistillError(
                f"TeacherEnsemble: {len(values)} weights for {len(names)} members {names}; give one per member"
            )
    if not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
        raise DistillError(
            f"TeacherEnsemble: weights must be finite, >= 0 and not all 0, got {values}"
        )
    total = sum(values)
    return torch.tensor([v / total for v in values], dtype=torch.float32)


def _check_member_name(name: str, ensemble: nn.Module) -> str:
    if not name or "." in name or hasattr(ensemble, name):
        raise DistillError(
            f"TeacherEnsemble: {name!r} cannot name a member (empty, dotted, or an attribute of the "
            "ensemble); give another name, e.g. teacher_a"
        )
    return name
