"""The non-finite-loss check of the training step, without a device-to-host sync per step on accelerators."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from distill.errors import DistillError


class NonFiniteLossGuard:
    """Raises a :class:`DistillError` naming the term(s), step and epoch where the loss became non-finite.

    On the CPU reading a value costs nothing extra, so every step is checked at once. On an
    accelerator, reading it would make the host wait for the device every step: there the
    guard keeps, on the device, which terms were non-finite at the first bad step and which
    step that was, and :meth:`raise_if_seen` reads it back when told to (the module does at
    logging steps, at the epoch's last batch and before validation). The error then still
    names the first bad step, but up to ``log_every_n_steps - 1`` more steps have run.

    Args:
        defer: record and read back later (``True``) or check every step (``False``);
            ``None`` defers off the CPU only.
    """

    def __init__(self, defer: bool | None = None) -> None:
        self.defer = defer
        self._names: list[str] = []
        self._bad: Tensor | None = None  # per term, then the total: non-finite at the first bad step
        self._where: Tensor | None = None  # [step, epoch] of the first bad step, -1 while none was seen

    def update(self, values: Mapping[str, Tensor], total: Tensor, step: int, epoch: int) -> None:
        if not (total.device.type != "cpu" if self.defer is None else self.defer):
            if not torch.isfinite(total.detach()):
                bad = [n for n, v in values.items() if not torch.isfinite(v.detach()).all()]
                raise _error(bad, step, epoch)
            return
        names = list(values)
        if names != self._names:
            self.raise_if_seen()  # the terms changed: settle what the old ones recorded first
            self._names, self._bad, self._where = names, None, None
        bad = ~torch.isfinite(torch.stack([v.detach().float().reshape(()) for v in values.values()] + [total.detach().float()]))
        here = torch.tensor([step, epoch], device=total.device)
        if self._bad is None:
            self._bad = bad
            self._where = torch.where(bad.any(), here, torch.full_like(here, -1))
            return
        first = bad.any() & (self._where[0] < 0)
        self._bad = torch.where(first, bad, self._bad)
        self._where = torch.where(first, here, self._where)

    def raise_if_seen(self) -> None:
        """Raise if a non-finite loss was recorded on the device (one device-to-host read)."""
        if self._where is None:
            return
        step, epoch = self._where.tolist()
        if step < 0:
            return
        flags = self._bad.tolist()
        self._bad = self._where = None
        raise _error([name for name, bad in zip(self._names, flags) if bad], step, epoch)


def _error(bad: list[str], step: int, epoch: int) -> DistillError:
    return DistillError(
        f"loss term(s) {', '.join(bad or ['total'])} became non-finite at step {step} "
        f"(epoch {epoch}); lower the learning rate, check the inputs, "
        "or clip gradients (trainer.gradient_clip_val=1.0)"
    )
