"""Losses on the models' outputs (logits): KD and its relatives.

Over 300 lines for a reason: one pure function per method with its formula in the docstring,
like ``torch.nn.functional``; splitting them would scatter the shared argument checks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.losses.functional._common import (
    _check_same_shape,
    check_temperature,
    _kl_from_log_probs,
    _log_or_neg_inf,
    _reduce,
)


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    dim: int = -1,
    reduction: str = "mean",
    mask: Tensor | None = None,
) -> Tensor:
    r"""Knowledge distillation loss of Hinton et al., "Distilling the Knowledge in a Neural Network" (2015).

    .. math::
        T^2 \cdot \mathrm{KL}\big(\mathrm{softmax}(t/T) \,\|\, \mathrm{softmax}(s/T)\big)

    summed over the class dimension ``dim``. The :math:`T^2` factor keeps the
    gradient scale independent of the temperature.

    Args:
        student_logits: student scores, e.g. ``[B, C]``, ``[B, C, H, W]`` with
            ``dim=1`` (dense prediction) or ``[B, L, V]`` (tokens).
        teacher_logits: teacher scores, same shape.
        temperature: softening temperature :math:`T > 0`.
        dim: the class dimension.
        reduction: ``"mean"`` averages over all remaining positions (the batch
            for ``[B, C]``), ``"sum"`` adds them up, ``"none"`` returns one value
            per position (the shape of the input without ``dim``).
        mask: optional 0/1 tensor with the shape of the per-position values
            (e.g. ``[B, L]``); positions with 0 are left out, also from the mean.
    """
    fn = "kd_loss"
    _check_same_shape(student_logits, teacher_logits, fn)
    temperature = check_temperature(temperature, fn)
    log_q = F.log_softmax(student_logits.float() / temperature, dim=dim)
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=dim)
    per_position = (log_p.exp() * (log_p - log_q)).sum(dim=dim) * temperature**2
    return _reduce(per_position, reduction, mask, fn)


def logit_mse_loss(student: Tensor, teacher: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error between student and teacher outputs, element-wise.

    For outputs that are not class scores (regression heads, embeddings), or
    logit matching as in Ba & Caruana, "Do Deep Nets Really Need to be Deep?" (2014).
    """
    fn = "logit_mse_loss"
    _check_same_shape(student, teacher, fn)
    squared = (student.float() - teacher.float()).pow(2)
    return _reduce(squared, reduction, None, fn)


def reverse_kl_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    dim: int = -1,
    reduction: str = "mean",
    mask: Tensor | None = None,
) -> Tensor:
    r"""Reverse KL divergence, as in MiniLLM (Gu et al., ICLR 2024).

    .. math::
        T^2 \cdot \mathrm{KL}\big(\mathrm{softmax}(s/T) \,\|\, \mathrm{softmax}(t/T)\big)

    summed over ``dim``. Unlike :func:`kd_loss` (forward KL) it is mode-seeking:
    the student is pushed to put its mass where the teacher is confident rather
    than to cover every class the teacher gives some probability.

    Args:
        student_logits: student scores, e.g. ``[B, C]``, ``[B, C, H, W]`` with
            ``dim=1`` or ``[B, L, V]``.
        teacher_logits: teacher scores, same shape.
        temperature: softening temperature :math:`T > 0`.
        dim: the class dimension.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per position).
        mask: optional 0/1 tensor with the shape of the per-position values
            (e.g. ``[B, L]``); positions with 0 are left out, also from the mean.
    """
    fn = "reverse_kl_loss"
    _check_same_shape(student_logits, teacher_logits, fn)
    temperature = check_temperature(temperature, fn)
    log_q = F.log_softmax(student_logits.float() / temperature, dim=dim)
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=dim)
    per_position = _kl_from_log_probs(log_q, log_p, dim) * temperature**2
    return _reduce(per_position, reduction, mask, fn)


def jsd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    beta: float = 0.5,
    temperature: float = 1.0,
    dim: int = -1,
    reduction: str = "mean",
    mask: Tensor | None = None,
) -> Tensor:
    r"""Generalised Jensen-Shannon divergence of GKD (Agarwal et al., ICLR 2024).

    With :math:`p = \mathrm{softmax}(t/T)` (teacher), :math:`q = \mathrm{softmax}(s/T)`
    (student) and the mixture :math:`m = \beta p + (1 - \beta) q`:

    .. math::
        T^2 \cdot \big(\beta\,\mathrm{KL}(p \,\|\, m) + (1 - \beta)\,\mathrm{KL}(q \,\|\, m)\big)

    summed over ``dim``. ``beta=0.5`` is the ordinary Jensen-Shannon divergence.
    For small :math:`\beta` it behaves like :math:`\beta\,\mathrm{KL}(p\|q)`, for
    :math:`\beta` near 1 like :math:`(1-\beta)\,\mathrm{KL}(q\|p)`; at exactly 0 or 1
    the mixture equals one of the two distributions and the loss is 0.

    Args:
        student_logits: student scores, e.g. ``[B, C]`` or ``[B, L, V]``.
        teacher_logits: teacher scores, same shape.
        beta: mixture weight of the teacher, in :math:`[0, 1]`.
        temperature: softening temperature :math:`T > 0`.
        dim: the class dimension.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per position).
        mask: optional 0/1 tensor with the shape of the per-position values
            (e.g. ``[B, L]``); positions with 0 are left out, also from the mean.
    """
    fn = "jsd_loss"
    _check_same_shape(student_logits, teacher_logits, fn)
    temperature = check_temperature(temperature, fn)
    beta = float(beta)
    if not 0.0 <= beta <= 1.0:  # also rejects NaN
        raise ValueError(f"{fn}: beta must be in [0, 1], got {beta}")
    log_q = F.log_softmax(student_logits.float() / temperature, dim=dim)
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=dim)
    # log m in log space: log of a mixture of underflowed probabilities would be log 0 = -inf
    log_m = torch.logaddexp(log_p + _log_or_neg_inf(beta), log_q + _log_or_neg_inf(1.0 - beta))
    teacher_part = _kl_from_log_probs(log_p, log_m, dim)
    student_part = _kl_from_log_probs(log_q, log_m, dim)
    per_position = (beta * teacher_part + (1.0 - beta) * student_part) * temperature**2
    return _reduce(per_position, reduction, mask, fn)


def tvd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    dim: int = -1,
    reduction: str = "mean",
    mask: Tensor | None = None,
) -> Tensor:
    r"""Total variation distance, as in f-DISTILL (Wen et al., ACL 2023).

    .. math::
        \tfrac{1}{2} \sum \big|\mathrm{softmax}(t/T) - \mathrm{softmax}(s/T)\big|

    summed over ``dim``. There is no :math:`T^2` factor: the value is a distance
    in :math:`[0, 1]`, and its gradient shrinks only like :math:`1/T` as the
    temperature grows (KL's shrinks like :math:`1/T^2`), so :math:`T^2` would
    over-compensate. Scale the term's weight if you change the temperature.

    Args:
        student_logits: student scores, e.g. ``[B, C]`` or ``[B, L, V]``.
        teacher_logits: teacher scores, same shape.
        temperature: softening temperature :math:`T > 0`.
        dim: the class dimension.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per position).
        mask: optional 0/1 tensor with the shape of the per-position values
            (e.g. ``[B, L]``); positions with 0 are left out, also from the mean.
    """
    fn = "tvd_loss"
    _check_same_shape(student_logits, teacher_logits, fn)
    temperature = check_temperature(temperature, fn)
    q = F.softmax(student_logits.float() / temperature, dim=dim)
    p = F.softmax(teacher_logits.float() / temperature, dim=dim)
    per_position = 0.5 * (p - q).abs().sum(dim=dim)
    return _reduce(per_position, reduction, mask, fn)


def soft_cross_entropy(
    student_logits: Tensor, target_probs: Tensor, dim: int = -1, reduction: str = "mean"
) -> Tensor:
    r"""Cross-entropy against a probability distribution instead of class indices.

    .. math::
        -\sum p \cdot \log \mathrm{softmax}(s)

    summed over ``dim``. It differs from :math:`\mathrm{KL}(p \| \mathrm{softmax}(s))`
    only by the entropy of :math:`p`, so the gradients are the same but the
    value does not reach 0.

    Args:
        student_logits: student scores, e.g. ``[B, C]``.
        target_probs: target probabilities, same shape, summing to 1 over ``dim``.
        dim: the class dimension.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per position).
    """
    fn = "soft_cross_entropy"
    _check_same_shape(student_logits, target_probs, fn)
    log_q = F.log_softmax(student_logits.float(), dim=dim)
    per_position = -(target_probs.float() * log_q).sum(dim=dim)
    return _reduce(per_position, reduction, None, fn)


def bce_kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""Knowledge distillation for independent binary outputs (multi-label classifiers).

    .. math::
        T^2 \cdot \mathrm{BCE}\big(\sigma(s/T),\ \sigma(t/T)\big)

    element by element: each output is its own two-class problem whose soft
    target is the teacher's sigmoid. As with :func:`kd_loss`, :math:`T^2` keeps
    the gradient scale independent of the temperature.

    Args:
        student_logits: student scores, any shape (e.g. ``[B, C]``).
        teacher_logits: teacher scores, same shape.
        temperature: softening temperature :math:`T > 0`.
        reduction: ``"mean"`` over all elements, ``"sum"``, or ``"none"`` (the
            element-wise tensor, same shape as the input).
    """
    fn = "bce_kd_loss"
    _check_same_shape(student_logits, teacher_logits, fn)
    temperature = check_temperature(temperature, fn)
    soft_targets = torch.sigmoid(teacher_logits.float() / temperature)
    per_element = F.binary_cross_entropy_with_logits(
        student_logits.float() / temperature, soft_targets, reduction="none"
    )
    return _reduce(per_element * temperature**2, reduction, None, fn)


def dkd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target: Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
) -> Tensor:
    r"""Decoupled knowledge distillation of Zhao et al., "Decoupled Knowledge Distillation" (CVPR 2022).

    .. math::
        \alpha \cdot \mathrm{TCKD} + \beta \cdot \mathrm{NCKD}

    **TCKD** (target class) is the KL divergence between the teacher's and the
    student's binary distributions :math:`[p_{target}, 1 - p_{target}]`;
    **NCKD** (non-target classes) is the KL divergence between their softmax
    over the non-target classes only. Both use temperature :math:`T`, are
    summed over the batch, multiplied by :math:`T^2` and divided by the batch
    size, as in the official code (``mdistiller``). The target class is left
    out of NCKD by subtracting 1000 from its scaled logit before the softmax.

    Args:
        student_logits: student scores ``[B, C]``.
        teacher_logits: teacher scores ``[B, C]``.
        target: class indices ``[B]``.
        alpha: weight of TCKD.
        beta: weight of NCKD.
        temperature: softening temperature :math:`T > 0`.
    """
    fn = "dkd_loss"
    _check_same_shape(student_logits, teacher_logits, fn)
    temperature = check_temperature(temperature, fn)
    if student_logits.dim() != 2 or target.shape != student_logits.shape[:1]:
        raise ValueError(
            f"{fn}: expects logits [B, C] and class indices [B], got logits "
            f"{tuple(student_logits.shape)} and target {tuple(target.shape)}"
        )
    is_target = F.one_hot(target.long(), student_logits.shape[1]).bool()
    scaled_s = student_logits.float() / temperature
    scaled_t = teacher_logits.float() / temperature

    def binary_log_probs(scaled: Tensor) -> Tensor:
        # [log p_target, log(1 - p_target)], each taken from log-softmax so neither underflows
        log_probs = F.log_softmax(scaled, dim=1)
        log_target = log_probs.masked_fill(~is_target, -math.inf).logsumexp(dim=1)
        log_rest = log_probs.masked_fill(is_target, -math.inf).logsumexp(dim=1)
        return torch.stack([log_target, log_rest], dim=1)

    tckd = _kl_from_log_probs(binary_log_probs(scaled_t), binary_log_probs(scaled_s), dim=1).sum()
    target_penalty = 1000.0 * is_target
    nckd = _kl_from_log_probs(
        F.log_softmax(scaled_t - target_penalty, dim=1),
        F.log_softmax(scaled_s - target_penalty, dim=1),
        dim=1,
    ).sum()
    batch_size = student_logits.shape[0]
    return (alpha * tckd + beta * nckd) * temperature**2 / batch_size


def _pearson_of_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    # eps as in the official DIST code: a constant row has correlation 0, not NaN
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    beta: float = 1.0,
    gamma: float = 1.0,
    temperature: float = 1.0,
) -> Tensor:
    r"""DIST of Huang et al., "Knowledge Distillation from A Stronger Teacher" (NeurIPS 2022).

    With :math:`p = \mathrm{softmax}(s/T)` and :math:`q = \mathrm{softmax}(t/T)`,
    both ``[B, C]``, and :math:`\rho` the Pearson correlation:

    .. math::
        T^2 \cdot \Big(\beta \cdot \tfrac{1}{B}\sum_i \big(1 - \rho(p_{i,:}, q_{i,:})\big)
        + \gamma \cdot \tfrac{1}{C}\sum_j \big(1 - \rho(p_{:,j}, q_{:,j})\big)\Big)

    The first (inter-class) term matches the ranking of classes for each
    sample, the second (intra-class) the ranking of samples for each class, so
    the student copies relations rather than exact probabilities. The
    intra-class term needs a batch of more than one sample.

    Args:
        student_logits: student scores ``[B, C]``.
        teacher_logits: teacher scores ``[B, C]``.
        beta: weight of the inter-class term.
        gamma: weight of the intra-class term.
        temperature: softening temperature :math:`T > 0`.
    """
    fn = "dist_loss"
    _check_same_shape(student_logits, teacher_logits, fn)
    temperature = check_temperature(temperature, fn)
    if student_logits.dim() != 2:
        raise ValueError(f"{fn}: expects logits [B, C], got {tuple(student_logits.shape)}")
    p = F.softmax(student_logits.float() / temperature, dim=1)
    q = F.softmax(teacher_logits.float() / temperature, dim=1)
    inter = 1.0 - _pearson_of_rows(p, q).mean()
    intra = 1.0 - _pearson_of_rows(p.t(), q.t()).mean()
    return temperature**2 * (beta * inter + gamma * intra)


def cosine_loss(student: Tensor, teacher: Tensor, dim: int = -1, reduction: str = "mean") -> Tensor:
    r"""One minus the cosine similarity of student and teacher vectors along ``dim``.

    .. math::
        1 - \frac{s \cdot t}{\max(\|s\| \|t\|, \epsilon)}

    It matches directions and ignores lengths, as the cosine embedding loss of
    Sanh et al., "DistilBERT" (2019).

    Args:
        student: student outputs or features, e.g. ``[B, D]`` or ``[B, L, D]``.
        teacher: teacher outputs or features, same shape.
        dim: the dimension holding the vectors.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per vector).
    """
    fn = "cosine_loss"
    _check_same_shape(student, teacher, fn)
    similarity = F.cosine_similarity(student.float(), teacher.float(), dim=dim)
    return _reduce(1.0 - similarity, reduction, None, fn)


def masked_bce_with_logits(
    logits: Tensor,
    targets: Tensor,
    ignore_value: float = -1,
    pos_weight: Tensor | None = None,
) -> Tensor:
    r"""Binary cross-entropy with logits over the labelled entries only.

    For multi-label data where some labels are unknown: entries whose target
    equals ``ignore_value`` add nothing, and the mean is taken over the
    others. Returns 0 (still attached to the graph) when nothing is labelled.

    Args:
        logits: scores, e.g. ``[B, C]``.
        targets: 0/1 (or soft) targets with the same shape, ``ignore_value``
            where unknown.
        ignore_value: the target value that marks an unknown label.
        pos_weight: optional weight of the positive examples, broadcast over the
            last dimension (one number per class), as in
            :func:`torch.nn.functional.binary_cross_entropy_with_logits`.
    """
    fn = "masked_bce_with_logits"
    if logits.shape != targets.shape:
        raise ValueError(
            f"{fn}: logits and targets must have the same shape, got "
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)}"
        )
    labelled = targets != ignore_value
    # ignored entries get a harmless target so the element-wise loss stays finite
    safe_targets = torch.where(labelled, targets, torch.zeros_like(targets)).float()
    if pos_weight is not None:
        pos_weight = pos_weight.float()
    per_element = F.binary_cross_entropy_with_logits(
        logits.float(), safe_targets, pos_weight=pos_weight, reduction="none"
    )
    per_element = torch.where(labelled, per_element, torch.zeros_like(per_element))
    return per_element.sum() / labelled.sum().clamp_min(1)


def pseudo_label_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    threshold: float = 0.0,
    dim: int = -1,
    reduction: str = "mean",
) -> Tensor:
    r"""Cross-entropy of the student on the teacher's arg-max, as in Lee, "Pseudo-Label" (ICML 2013 workshop).

    .. math::
        -\log \mathrm{softmax}(s)_{\hat y}, \qquad \hat y = \arg\max t

    kept only where the teacher's confidence :math:`\max \mathrm{softmax}(t)`
    is at least ``threshold``; the mean is over the kept positions (0, still
    attached to the graph, when none is kept).

    Args:
        student_logits: student scores, e.g. ``[B, C]``.
        teacher_logits: teacher scores, same shape.
        threshold: the least teacher confidence, in [0, 1); 0 keeps every position.
        dim: the class dimension.
        reduction: ``"mean"`` over the kept positions, ``"sum"``, or ``"none"`` (one
            value per position, 0 where the teacher is not confident enough).
    """
    fn = "pseudo_label_loss"
    _check_same_shape(student_logits, teacher_logits, fn)
    if not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f"{fn}: threshold must be in [0, 1), got {threshold}")
    teacher_probs = F.softmax(teacher_logits.detach().float(), dim=dim)
    confidence, pseudo_labels = teacher_probs.max(dim=dim, keepdim=True)
    log_q = F.log_softmax(student_logits.float(), dim=dim)
    per_position = -log_q.gather(dim, pseudo_labels).squeeze(dim)
    kept = (confidence.squeeze(dim) >= threshold).float()
    return _reduce(per_position, reduction, kept, fn)
