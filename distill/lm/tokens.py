"""The one place where next-token shifting and loss masking happen.

A causal LM's logits at position ``t`` predict the token at ``t + 1``. Batches
carry ``labels`` aligned with ``input_ids`` (``labels[b, t]`` is the token at
position ``t``), with ``ignore_index`` (-100, as in Hugging Face) at every
position that carries no loss: prompt tokens, padding on either side, and the
first token of each document packed into a row. Every LM loss and metric
pairs ``logits[:, :-1]`` with :func:`next_token_targets` and keeps the
positions of its mask, so that they all agree on which tokens count.
"""

from __future__ import annotations

import torch
from torch import Tensor

from distill.errors import DistillError

IGNORE_INDEX = -100


def next_token_targets(labels: Tensor, ignore_index: int = IGNORE_INDEX) -> tuple[Tensor, Tensor]:
    """The token each position predicts and whether it carries loss.

    Args:
        labels: ``[B, T]`` token ids, ``ignore_index`` where no loss is taken.
        ignore_index: the label value that marks positions without loss.

    Returns:
        ``(targets, mask)``, both ``[B, T-1]``: ``targets = labels[:, 1:]`` and
        ``mask = targets != ignore_index``. Pair them with ``shift_logits(logits)``.
    """
    _check_labels(labels)
    targets = labels[:, 1:]
    return targets, targets != ignore_index


def shift_logits(logits: Tensor) -> Tensor:
    """``logits[:, :-1]``: the positions that have a next token to predict (``[B, T, V]`` -> ``[B, T-1, V]``)."""
    if logits.dim() != 3:
        raise DistillError(
            f"expected language-model logits [batch, sequence, vocabulary], got shape {tuple(logits.shape)}"
        )
    return logits[:, :-1]


def count_loss_tokens(mask: Tensor) -> Tensor:
    """The number of loss-carrying tokens in ``mask`` (an int64 scalar tensor, on the mask's device)."""
    return mask.sum(dtype=torch.int64)


def loss_positions(labels: Tensor, ignore_index: int = IGNORE_INDEX) -> tuple[Tensor, Tensor]:
    """Where the loss-carrying predictions are, as rows of the flattened logits.

    For logits ``[B, T, V]`` viewed as ``logits.reshape(B * T, V)`` (a view, no
    copy), returns ``(rows, targets)``, both ``[N]`` with ``N`` the number of
    loss-carrying tokens: ``rows[i] = b * T + t`` is a position whose next token
    ``targets[i] = labels[b, t + 1]`` carries loss. Rows are in batch-major order.
    """
    targets, mask = next_token_targets(labels, ignore_index)
    batch, positions = mask.nonzero(as_tuple=True)
    rows = batch * labels.shape[1] + positions
    return rows, targets[batch, positions]


def check_logits_match_labels(logits: Tensor, labels: Tensor, owner: str) -> None:
    """Raise a one-line error unless ``logits`` is ``[B, T, V]`` and ``labels`` is ``[B, T]``."""
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise DistillError(
            f"{owner}: expected logits [batch, sequence, vocabulary] and labels [batch, sequence], got "
            f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)}; pass the model's full "
            "logits and the batch's labels (-100 where no loss is taken)"
        )


def _check_labels(labels: Tensor) -> None:
    if labels.dim() != 2 or labels.is_floating_point():
        raise DistillError(
            f"expected integer labels [batch, sequence], got {labels.dtype} of shape {tuple(labels.shape)}; "
            "pass token ids with -100 where no loss is taken"
        )
    if labels.shape[1] < 2:
        raise DistillError(
            f"sequences of length {labels.shape[1]} have no next token to predict; use sequences of 2 tokens or more"
        )
