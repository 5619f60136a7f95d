"""The per-token mean over an optimizer step's whole batch under gradient accumulation (and DDP).

With ``accumulate_grad_batches = N`` Lightning divides each micro-batch's loss by ``N``, so a
term that divides its summed loss ``S_i`` by the micro-batch's own ``T_i`` loss tokens gives
the step the mean of the micro-batches' means, not ``sum(S_i) / sum(T_i)``: two micro-batches
of 2 and 8 tokens weight each of the first's tokens four times as much. The tokens still to
come are unknown when a micro-batch's loss is taken, so :class:`StepTokenMean` divides every
micro-batch of a step by one constant, the first micro-batch's count ``c``, counts the step's
tokens ``T`` as they come, and multiplies the gradients by ``c · N / T`` just before the
optimizer step (Lightning's ``on_before_optimizer_step``, after AMP's unscaling and before
gradient clipping). The step's gradient is then that of ``sum(S_i) / T`` exactly; under DDP the
counts are summed over the processes first (:func:`~distill.lm.ddp_token_normalizer.global_loss_tokens`),
so it is the per-token mean of the global batch. The values logged for each micro-batch are
its own per-token mean, as without accumulation.

Only when every loss term divides by the shared token count (the token terms; not the
cross-tokenizer ones, which average aligned positions) is the step rescaled: a gradient mixed
from other terms cannot be. Without accumulation nothing changes (DDP alone:
:func:`~distill.lm.ddp_token_normalizer.set_token_normalizer`). Callbacks that read gradients
in ``on_before_optimizer_step`` (``log_grad_norms``) see them before the rescaling, by a factor
``c · N / T`` that is 1 when the micro-batches hold equal numbers of tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from distill.lm.ddp_token_normalizer import NORMALIZED_TERMS, global_loss_tokens, set_token_normalizer
from distill.losses.base import LossTerm, StepOutputs

log = logging.getLogger("distill")


class StepTokenMean:
    """One optimizer step's token count and the constant its micro-batches divide by."""

    def __init__(self) -> None:
        self.first: Tensor | None = None  # the step's first micro-batch's count per process: every micro-batch's divisor
        self.tokens: Tensor | None = None  # the step's loss tokens so far, all processes
        self._told = False

    def before_loss(self, outputs: StepOutputs, terms: Mapping[str, LossTerm], trainer: Any) -> Tensor | None:
        """Set ``outputs.token_normalizer`` for this micro-batch; return the factor that turns the terms'
        values into this micro-batch's own per-token means (for the logs), or ``None`` when they already are."""
        accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1) if trainer is not None else 1
        if accumulate <= 1:
            set_token_normalizer(outputs, terms, trainer)
            return None
        if not terms or not all(isinstance(term, NORMALIZED_TERMS) for term in terms.values()):
            if not self._told:
                others = sorted(name for name, term in terms.items() if not isinstance(term, NORMALIZED_TERMS))
                log.info("accumulate_grad_batches=%d with loss terms that are no per-token means (%s): each micro-batch "
                         "keeps its own mean", accumulate, ", ".join(others))
                self._told = True
            set_token_normalizer(outputs, terms, trainer)
            return None
        count = global_loss_tokens(outputs, terms, trainer)
        if count is None:
            return None
        world = int(getattr(trainer, "world_size", 1) or 1)
        share = count.to(torch.float32) / world
        if self.first is None:
            self.first, self.tokens = share, count.to(torch.float32)
        else:
            self.tokens = self.tokens + count
        outputs.token_normalizer = self.first
        return self.first / share

    def rescale(self, optimizer: torch.optim.Optimizer, trainer: Any) -> None:
        """Multiply the step's gradients by ``c · N · world_size / T`` (see the module's text); start a new step."""
        if self.first is None:
            return
        accumulate = int(trainer.accumulate_grad_batches)
        world = int(getattr(trainer, "world_size", 1) or 1)
        factor = self.first * accumulate * world / self.tokens
        self.first = self.tokens = None
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    parameter.grad.mul_(factor.to(device=parameter.grad.device, dtype=parameter.grad.dtype))
