"""Gradients of the weighted loss terms on the student's parameters, whole-batch and per sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _flat(grads: Sequence[Tensor | None], params: Sequence[Tensor]) -> Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float() for g, p in zip(grads, params)])


def term_gradients(values: Mapping[str, Tensor], weights: Mapping[str, float], params: Sequence[Tensor]) -> dict[str, Tensor]:
    """Each weighted term's gradient on ``params``, flattened into one vector; terms without a graph are left out.

    The graph is kept (``retain_graph=True``): the training step's own backward pass runs afterwards.
    """
    gradients = {}
    for name, value in values.items():
        if value.requires_grad:
            grads = torch.autograd.grad(weights[name] * value, params, retain_graph=True, allow_unused=True)
            gradients[name] = _flat(grads, params)
    return gradients


def per_sample_gradient_variance(per_sample: Tensor, params: Sequence[Tensor], chunk_size: int = 8) -> Tensor:
    r"""The unbiased variance of the per-sample gradients :math:`g_i = \nabla_\theta \ell_i`, summed over parameters.

    .. math::
        \frac{1}{B - 1} \sum_i \| g_i - \bar g \|^2, \qquad \bar g = \frac{1}{B} \sum_i g_i

    (the trace of the per-sample gradients' covariance; the variance of the batch's mean
    gradient is this over :math:`B`). The gradients are exact, not estimated: ``chunk_size``
    rows of the identity at a time are pulled back through the graph in one vmapped backward
    pass (``torch.autograd.grad(..., is_grads_batched=True)``), so memory grows with
    ``chunk_size × parameters``, not with the batch; the sums are accumulated in float64.
    ``per_sample`` is ``[B]`` (one value per sample). With a BatchNorm student in training
    mode a sample's value depends on the others through the batch statistics; :math:`g_i`
    is then the gradient of sample ``i``'s value within its batch.
    """
    size = per_sample.shape[0]
    if size < 2:
        return torch.tensor(float("nan"))
    total = None
    squares = torch.zeros((), dtype=torch.float64, device=per_sample.device)
    eye = torch.eye(size, dtype=per_sample.dtype, device=per_sample.device)
    for start in range(0, size, chunk_size):
        rows = eye[start : start + chunk_size]
        grads = torch.autograd.grad(per_sample, params, grad_outputs=rows, retain_graph=True, allow_unused=True,
                                    is_grads_batched=True)
        flat = torch.cat([
            (g if g is not None else torch.zeros(len(rows), *p.shape, device=rows.device)).reshape(len(rows), -1)
            for g, p in zip(grads, params)
        ], dim=1).double()
        squares = squares + flat.pow(2).sum()
        total = flat.sum(0) if total is None else total + flat.sum(0)
    return (squares - total.pow(2).sum() / size) / (size - 1)
