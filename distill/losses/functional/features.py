"""Losses on intermediate features and embeddings: hints, attention maps, relations.

Features are compared in float32. Student and teacher features may have
different widths (channels, embedding sizes) wherever the loss compares
derived quantities (attention maps, similarity matrices, distances); only
:func:`hint_loss` compares the features themselves and needs equal shapes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from distill.losses.functional._common import _check_same_shape
from distill.losses.functional.relations import pool_to_smaller


def _check_same_batch(student: Tensor, teacher: Tensor, fn: str) -> None:
    if student.dim() < 1 or teacher.dim() < 1 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{fn}: student and teacher features must have the same batch size (first dimension), "
            f"got student {tuple(student.shape)} and teacher {tuple(teacher.shape)}"
        )


def _check_p(p: float, fn: str) -> float:
    p = float(p)
    if not math.isfinite(p) or p <= 0:
        raise ValueError(f"{fn}: p must be a finite number > 0, got {p}")
    return p


def _flatten(feature: Tensor) -> Tensor:
    """``[B, ...]`` as ``[B, -1]`` in float32."""
    return feature.float().reshape(feature.shape[0], -1)


def hint_loss(student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
    r"""Hint loss of FitNets (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015).

    .. math::
        \frac{1}{N} \sum (s - t)^2

    the mean squared error over all :math:`N` elements. The student's feature
    must already have the teacher's shape: the regressor (adapter) that maps
    it there is applied by :class:`distill.losses.FitNet`, not here.

    Args:
        student_feature: the (adapted) student feature, e.g. ``[B, C, H, W]``.
        teacher_feature: the teacher's feature, same shape.
    """
    fn = "hint_loss"
    _check_same_shape(student_feature, teacher_feature, fn)
    return (student_feature.float() - teacher_feature.float()).pow(2).mean()


def _attention_map(feature: Tensor, p: float) -> Tensor:
    """Mean over channels of ``|f|^p``: ``[B, C, H, W]`` -> ``[B, H, W]``."""
    return feature.float().abs().pow(p).mean(dim=1)


def attention_transfer_loss(student_feature: Tensor, teacher_feature: Tensor, p: float = 2) -> Tensor:
    r"""Attention transfer of Zagoruyko & Komodakis, "Paying More Attention to Attention" (ICLR 2017).

    With the spatial attention map
    :math:`a(f) = \mathrm{normalize}\big(\mathrm{flatten}(\tfrac{1}{C}\sum_c |f_c|^p)\big)`
    (L2-normalised per sample):

    .. math::
        \mathrm{mean}\big((a(s) - a(t))^2\big)

    averaged over the batch and the :math:`H \times W` positions. Channel
    counts may differ. If the spatial sizes differ, the larger *features* are
    adaptive-average-pooled to the smaller height and width first and the maps
    are formed from the pooled features, as the authors' code and RepDistiller /
    mdistiller do (pooling the maps instead gives other values, since
    :math:`|\cdot|^p` and the average do not commute).

    Args:
        student_feature: student activations ``[B, C_s, H_s, W_s]``.
        teacher_feature: teacher activations ``[B, C_t, H_t, W_t]``.
        p: the exponent of the activations, > 0 (2 in the paper).
    """
    fn = "attention_transfer_loss"
    _check_same_batch(student_feature, teacher_feature, fn)
    if student_feature.dim() != 4 or teacher_feature.dim() != 4:
        raise ValueError(
            f"{fn}: expects feature maps [B, C, H, W], got student {tuple(student_feature.shape)} "
            f"and teacher {tuple(teacher_feature.shape)}"
        )
    p = _check_p(p, fn)
    student_feature, teacher_feature = pool_to_smaller(student_feature.float(), teacher_feature.float())
    a_s, a_t = _attention_map(student_feature, p), _attention_map(teacher_feature, p)
    a_s = F.normalize(a_s.reshape(a_s.shape[0], -1), dim=1)
    a_t = F.normalize(a_t.reshape(a_t.shape[0], -1), dim=1)
    return (a_s - a_t).pow(2).mean()


def _similarity(feature: Tensor) -> Tensor:
    flat = _flatten(feature)
    return F.normalize(flat @ flat.t(), dim=1)


def similarity_preserving_loss(student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
    r"""Similarity-preserving KD of Tung & Mori, "Similarity-Preserving Knowledge Distillation" (ICCV 2019).

    With :math:`F` the feature flattened to ``[B, -1]`` and
    :math:`G = \mathrm{normalize}_{rows}(F F^\top)` the ``[B, B]`` matrix of
    sample similarities with L2-normalised rows:

    .. math::
        \frac{1}{B^2} \big\| G_s - G_t \big\|_F^2

    The student learns which samples the teacher finds alike, whatever the
    widths of the two features.

    Args:
        student_feature: student activations ``[B, ...]``.
        teacher_feature: teacher activations ``[B, ...]`` (any other sizes).
    """
    fn = "similarity_preserving_loss"
    _check_same_batch(student_feature, teacher_feature, fn)
    batch_size = student_feature.shape[0]
    difference = _similarity(student_feature) - _similarity(teacher_feature)
    return difference.pow(2).sum() / batch_size**2


def _pairwise_distances(embedding: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distances ``[B, B]``; the diagonal is exactly 0 and has a zero gradient."""
    squared_norms = embedding.pow(2).sum(dim=1)
    squared = squared_norms.unsqueeze(1) + squared_norms.unsqueeze(0) - 2 * embedding @ embedding.t()
    distances = squared.clamp_min(eps).sqrt()
    eye = torch.eye(len(embedding), dtype=torch.bool, device=embedding.device)
    return distances.masked_fill(eye, 0.0)


def _normalised_distances(embedding: Tensor) -> Tensor:
    distances = _pairwise_distances(embedding)
    positive = distances > 0
    mean = distances.sum() / positive.sum().clamp_min(1)
    return distances / mean.clamp_min(1e-12)


def _angles(embedding: Tensor) -> Tensor:
    """``[B, B, B]``: entry ``[i, j, k]`` is the cosine of the angle at anchor ``i`` between ``j`` and ``k``."""
    differences = F.normalize(embedding.unsqueeze(0) - embedding.unsqueeze(1), dim=2)
    return differences @ differences.transpose(1, 2)


def rkd_loss(
    student_embedding: Tensor,
    teacher_embedding: Tensor,
    distance_weight: float = 25.0,
    angle_weight: float = 50.0,
) -> Tensor:
    r"""Relational KD of Park et al., "Relational Knowledge Distillation" (CVPR 2019).

    Both embeddings are flattened to ``[B, -1]``. The **distance** part
    compares the ``[B, B]`` matrices of pairwise Euclidean distances, each
    divided by the mean of its positive entries; the **angle** part compares,
    for every triple :math:`(i, j, k)`, the cosine of the angle at anchor
    :math:`i`, :math:`\langle \hat e_{ij}, \hat e_{ik} \rangle` with
    :math:`\hat e_{ij} = \mathrm{normalize}(e_j - e_i)` (a zero difference
    normalises to 0, so triples with a repeated anchor give 0):

    .. math::
        w_d \cdot \mathrm{smooth\_L1}(\psi_D^s, \psi_D^t)
        + w_a \cdot \mathrm{smooth\_L1}(\psi_A^s, \psi_A^t)

    each smooth-L1 averaged over its :math:`B^2` or :math:`B^3` entries, as in
    the official code. The embedding widths may differ.

    Args:
        student_embedding: student embeddings ``[B, ...]`` (e.g. the pooled
            penultimate features).
        teacher_embedding: teacher embeddings ``[B, ...]``.
        distance_weight: :math:`w_d`, 25 in the paper.
        angle_weight: :math:`w_a`, 50 in the paper.
    """
    fn = "rkd_loss"
    _check_same_batch(student_embedding, teacher_embedding, fn)
    for name, value in (("distance_weight", distance_weight), ("angle_weight", angle_weight)):
        if not math.isfinite(float(value)) or float(value) < 0:
            raise ValueError(f"{fn}: {name} must be a finite number >= 0, got {value}")
    student, teacher = _flatten(student_embedding), _flatten(teacher_embedding)
    distance = F.smooth_l1_loss(_normalised_distances(student), _normalised_distances(teacher))
    angle = F.smooth_l1_loss(_angles(student), _angles(teacher))
    return float(distance_weight) * distance + float(angle_weight) * angle


def _row_distributions(embedding: Tensor, eps: float) -> Tensor:
    unit = embedding / (embedding.norm(dim=1, keepdim=True) + eps)
    similarity = (unit @ unit.t() + 1.0) / 2.0
    return similarity / similarity.sum(dim=1, keepdim=True)


def pkt_loss(student_embedding: Tensor, teacher_embedding: Tensor, eps: float = 1e-7) -> Tensor:
    r"""Probabilistic knowledge transfer of Passalis & Tefas (ECCV 2018).

    From "Learning Deep Representations with Probabilistic Knowledge Transfer".

    Both embeddings are flattened to ``[B, -1]`` and their rows
    L2-normalised (dividing by the norm plus ``eps``); cosine similarities
    :math:`s` become :math:`(s + 1) / 2 \in [0, 1]`, and each row is divided by
    its sum to give the conditional distributions :math:`p_{j|i}`:

    .. math::
        \frac{1}{B^2} \sum_{i, j} p^t_{j|i} \log \frac{p^t_{j|i} + \epsilon}{p^s_{j|i} + \epsilon}

    Args:
        student_embedding: student embeddings ``[B, ...]``.
        teacher_embedding: teacher embeddings ``[B, ...]`` (the width may differ).
        eps: the small constant in the normalisation and the logarithm.
    """
    fn = "pkt_loss"
    _check_same_batch(student_embedding, teacher_embedding, fn)
    p_s = _row_distributions(_flatten(student_embedding), eps)
    p_t = _row_distributions(_flatten(teacher_embedding), eps)
    return (p_t * torch.log((p_t + eps) / (p_s + eps))).mean()


def activation_penalty(feature: Tensor, p: float = 2) -> Tensor:
    r"""The mean of :math:`|f|^p` over all elements of a feature.

    An activation regulariser for the student alone (with ``p=2``, the AR
    term of Merity et al., "Revisiting Activation Regularization for Language
    RNNs", 2017): it keeps activations small and, with ``p=1``, sparse.

    Args:
        feature: any activations, e.g. ``[B, C, H, W]`` or ``[B, D]``.
        p: the exponent, > 0.
    """
    fn = "activation_penalty"
    p = _check_p(p, fn)
    if feature.numel() == 0:
        raise ValueError(f"{fn}: the feature is empty, shape {tuple(feature.shape)}")
    return feature.float().abs().pow(p).mean()
