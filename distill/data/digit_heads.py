"""Digits as several yes/no tasks ("digit k vs digit 0"), each labelled on part of the data only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from distill.data.digits import DigitsDataModule
from distill.data.tensor_dataset import TensorClassificationDataset
from distill.errors import DistillError

#: the target of a head that is not labelled for a sample (what MaskedBCE ignores by default)
MISSING = -1.0


class DigitHeadsDataModule(DigitsDataModule):
    """The digits with one binary target per head: 1 for the head's positive digit, 0 for its negative one.

    A head is undefined (target ``-1``, which :class:`~distill.losses.MaskedBCE`
    ignores) for the other digits, and in the training split also for the part of
    its samples whose label is held back (``1 - label_fraction`` of them, drawn
    with ``label_seed``), as when each task's labels were collected separately.
    Validation and test keep every defined target. Batches are ``(x, targets)``
    with float targets of shape ``[batch, heads]``.

    Args:
        heads: ``[positive, negative]`` digit pairs, one per head.
        label_fraction: the share of each head's training samples that keep their label, in (0, 1].
        label_seed: the seed of that draw.
        only_defined: keep only the samples for which some head is defined (a
            one-head view is then a plain binary data set, to train that head's teacher on).
        **options: as for :class:`DigitsDataModule`.
    """

    name = "digit_heads"

    def __init__(
        self,
        heads: Sequence[Sequence[int]] = ((1, 0), (2, 0), (3, 0), (4, 0)),
        label_fraction: float = 0.5,
        label_seed: int = 0,
        only_defined: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        pairs = [list(map(int, pair)) for pair in heads]
        if not pairs or any(len(p) != 2 or p[0] == p[1] or not all(0 <= d <= 9 for d in p) for p in pairs):
            raise DistillError(
                f"data.heads must be a list of [positive, negative] pairs of different digits 0-9, got {heads}; "
                "e.g. data.heads=[[1,0],[2,0]]"
            )
        if not 0 < float(label_fraction) <= 1:
            raise DistillError(f"data.label_fraction must be in (0, 1], got {label_fraction}")
        self.heads = pairs
        self.label_fraction = float(label_fraction)
        self.label_seed = int(label_seed)
        self.only_defined = bool(only_defined)
        self.num_classes = len(pairs)

    def load_splits(self) -> dict[str, TensorClassificationDataset]:
        generator = torch.Generator().manual_seed(self.label_seed)
        splits = {}
        for name, split in super().load_splits().items():  # the digits make the targets
            targets = head_targets(split.labels, self.heads)
            rows = (targets != MISSING).any(dim=1) if self.only_defined else torch.ones(len(targets), dtype=torch.bool)
            targets = targets[rows]
            if name == "train":
                targets = _hold_back(targets, self.label_fraction, generator)
            splits[name] = TensorClassificationDataset(split.inputs[rows], targets)
        return splits

    def data_fingerprint(self) -> dict[str, Any]:
        return {**super().data_fingerprint(), "heads": self.heads, "only_defined": self.only_defined}


def head_targets(digits: Tensor, heads: Sequence[Sequence[int]]) -> Tensor:
    """``[N, heads]`` float targets: 1 where the digit is the head's positive, 0 its negative, else -1."""
    targets = torch.full((len(digits), len(heads)), MISSING)
    for h, (positive, negative) in enumerate(heads):
        targets[digits == positive, h] = 1.0
        targets[digits == negative, h] = 0.0
    return targets


def _hold_back(targets: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """Mark all but ``fraction`` of each head's defined targets as missing, drawn at random."""
    targets = targets.clone()
    for h in range(targets.shape[1]):
        defined = (targets[:, h] != MISSING).nonzero().squeeze(1)
        order = defined[torch.randperm(len(defined), generator=generator)]
        targets[order[round(fraction * len(defined)):], h] = MISSING
    return targets
