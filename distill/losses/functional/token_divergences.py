"""Divergences between two next-token distributions, one value per token.

Each function takes log-probabilities ``log_p`` (teacher) and ``log_q``
(student) of shape ``[N, K]`` -- ``K`` is the vocabulary, or the top-k buckets
plus a tail bucket of :mod:`distill.losses.functional.token_topk` -- and
returns ``[N]``. A bucket with no mass may be ``-inf``: it is floored at
:data:`LOG_ZERO`, whose probability is exactly 0, so that ``0 * log 0`` terms
vanish without NaNs in the values or the gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: stands for log 0: exp(LOG_ZERO) == 0, and sums with it stay finite in float32
LOG_ZERO = -1e30


def _floor(log_probs: Tensor) -> Tensor:
    return log_probs.clamp_min(LOG_ZERO)


def _kl(log_a: Tensor, log_b: Tensor) -> Tensor:
    """KL(a || b) summed over the last dimension."""
    log_a, log_b = _floor(log_a), _floor(log_b)
    return (log_a.exp() * (log_a - log_b)).sum(dim=-1)


def forward_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q), the soft-target loss of Hinton et al., "Distilling the Knowledge in a Neural Network" (2015)."""
    return _kl(log_p, log_q)


def reverse_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(q || p), the mode-seeking divergence of MiniLLM (Gu et al., ICLR 2024)."""
    return _kl(log_q, log_p)


def generalized_jsd(log_p: Tensor, log_q: Tensor, beta: float) -> Tensor:
    r"""Generalised JSD(β) of GKD (Agarwal et al., ICLR 2024), with TRL's ends: β = 0 forward KL, β = 1 reverse KL.

    For :math:`0 < \beta < 1`, with the mixture :math:`m = \beta p + (1 - \beta) q`:
    :math:`\beta\,\mathrm{KL}(p \| m) + (1 - \beta)\,\mathrm{KL}(q \| m)`. That
    tends to 0 at both ends, so, as in TRL's ``GKDTrainer``, β = 0 is defined as
    :math:`\mathrm{KL}(p \| q)` and β = 1 as :math:`\mathrm{KL}(q \| p)`.
    """
    beta = float(beta)
    if beta == 0.0:
        return forward_kl(log_p, log_q)
    if beta == 1.0:
        return reverse_kl(log_p, log_q)
    log_p, log_q = _floor(log_p), _floor(log_q)
    log_m = torch.logaddexp(log_p + math.log(beta), log_q + math.log1p(-beta))
    return beta * _kl(log_p, log_m) + (1.0 - beta) * _kl(log_q, log_m)


def total_variation(log_p: Tensor, log_q: Tensor) -> Tensor:
    r"""Total variation distance :math:`\tfrac12 \sum |p - q|`, as in f-DISTILL (Wen et al., ACL 2023)."""
    return 0.5 * (_floor(log_p).exp() - _floor(log_q).exp()).abs().sum(dim=-1)


def skew_kl(log_p: Tensor, log_q: Tensor, alpha: float) -> Tensor:
    r"""Skew KL :math:`\mathrm{KL}(p \| \alpha p + (1-\alpha) q)` of DistiLLM (Ko et al., ICML 2024)."""
    log_p, log_q = _floor(log_p), _floor(log_q)
    return _kl(log_p, _mixture(log_p, log_q, float(alpha)))


def skew_reverse_kl(log_p: Tensor, log_q: Tensor, alpha: float) -> Tensor:
    r"""Skew reverse KL :math:`\mathrm{KL}(q \| (1-\alpha) p + \alpha q)` of DistiLLM (Ko et al., ICML 2024)."""
    log_p, log_q = _floor(log_p), _floor(log_q)
    return _kl(log_q, _mixture(log_q, log_p, float(alpha)))


def _mixture(log_a: Tensor, log_b: Tensor, weight_a: float) -> Tensor:
    """log(weight_a * a + (1 - weight_a) * b), exact at weights 0 and 1."""
    if weight_a == 0.0:
        return log_b
    if weight_a == 1.0:
        return log_a
    return torch.logaddexp(log_a + math.log(weight_a), log_b + math.log1p(-weight_a))
