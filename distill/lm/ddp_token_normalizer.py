"""The per-token mean over the global batch under DDP: every process divides by the same token count.

A token term divides its summed loss by this micro-batch's number of loss-carrying
tokens. Under DDP, where each process holds different tokens and the gradients are
averaged over processes, that weights a token of a process holding few tokens more
than one of a process holding many: the step's gradient is then the mean of the
processes' means, not the per-token mean of the global batch. :func:`set_token_normalizer`
sums the loss-carrying tokens of this micro-batch over all processes (one all-reduce
of one integer per training step) and sets ``outputs.token_normalizer`` to
``global count / world_size`` (:func:`~distill.losses.functional.global_token_normalizer`),
so that DDP's average of the processes' gradients is the gradient of the global
per-token mean.

Gradient accumulation (``accumulate_grad_batches > 1``) is :mod:`distill.lm.step_token_mean`'s: the
micro-batches still to come are unknown when a loss is taken, so it rescales the gradients
at the optimizer step instead.

A single process (``world_size == 1``) is left exactly as it was: nothing is set, no
collective runs, and each term divides by its own count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from distill.errors import DistillError
from distill.lm.tokens import next_token_targets
from distill.losses.base import LossTerm, StepOutputs
from distill.losses.functional.token_losses import global_token_normalizer
from distill.losses.token_attention import TokenAttention
from distill.losses.token_hidden_states import TokenHiddenStates
from distill.losses.token_loss_term import TokenLossTerm

#: the terms that divide by ``outputs.token_normalizer`` when it is set (the cross-tokenizer terms
#: count aligned positions instead, and keep each process's own mean)
NORMALIZED_TERMS = (TokenLossTerm, TokenHiddenStates, TokenAttention)


def set_token_normalizer(outputs: StepOutputs, terms: Mapping[str, LossTerm], trainer: Any) -> None:
    """Set ``outputs.token_normalizer`` for a per-token mean over all processes of a DDP step.

    Args:
        outputs: this training step's outputs; ``outputs.labels`` say which tokens carry loss.
        terms: the module's loss terms, by name.
        trainer: the Lightning trainer, or ``None`` (a step run by hand: nothing is set).

    Does nothing when ``trainer`` is ``None``, its ``world_size`` is 1, no term reads the
    normalizer or the batch has no labels. Every process reaches the all-reduce in every
    training step (the number of terms and the presence of labels are the same on all ranks).
    """
    if trainer is None or int(trainer.world_size) <= 1:
        return
    total = global_loss_tokens(outputs, terms, trainer)
    if total is not None:
        outputs.token_normalizer = global_token_normalizer(total, world_size=trainer.world_size)


def global_loss_tokens(outputs: StepOutputs, terms: Mapping[str, LossTerm], trainer: Any) -> Tensor | None:
    """This micro-batch's loss-carrying tokens summed over all processes (at least 1), or ``None`` when the
    batch has no labels or no term reads the normalizer. One all-reduce of one integer under DDP."""
    if outputs.labels is None:
        return None
    normalized = {name: term for name, term in terms.items() if isinstance(term, NORMALIZED_TERMS)}
    if not normalized:
        return None
    ignore = {int(term.ignore_index) for term in normalized.values()}
    if len(ignore) > 1:
        settings = ", ".join(f"{name}: {term.ignore_index}" for name, term in normalized.items())
        raise DistillError(
            f"the token loss terms mark positions without loss differently ({settings}), but they share one "
            "global token count; give them the same ignore_index"
        )
    _, mask = next_token_targets(outputs.labels, ignore.pop())
    local = mask.sum().reshape(1)  # int64: the sum over processes is exact
    total = trainer.strategy.reduce(local.clone(), reduce_op="sum") if trainer is not None and int(trainer.world_size) > 1 else local
    # a global batch without any loss token sums to 0 in every term: divide by 1, as a single process does
    return total.clamp_min(1).squeeze(0)
