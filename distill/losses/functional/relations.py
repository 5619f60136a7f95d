"""Losses that compare derived structure: kernels, correlations, flows, factors, likelihoods, contrasts.

The functions behind NST, CC, FSP, AB, FT, VID, CRD and ReviewKD. They are
pure: the trainable parts of those methods (embedding heads, connectors,
paraphrasers, regressors, memory banks) live in the loss classes, which pass
their outputs here. Everything is computed in float32.

Over 300 lines for a reason: eight methods' pure functions, each short, side by side as in
``torch.nn.functional``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_maps(student: Tensor, teacher: Tensor, fn: str) -> None:
    if student.dim() != 4 or teacher.dim() != 4:
        raise ValueError(
            f"{fn}: expects feature maps [B, C, H, W], got student {tuple(student.shape)} "
            f"and teacher {tuple(teacher.shape)}"
        )
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{fn}: student and teacher features must have the same batch size, got "
            f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)}"
        )


def _check_positive(value: float, name: str, fn: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{fn}: {name} must be a finite number > 0, got {value}")
    return value


def pool_to_smaller(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """Adaptive-average-pool the larger of two ``[B, C, H, W]`` maps to the other's height and width.

    Each spatial dimension is pooled to the smaller of the two sizes, as the
    reference code of NST, FSP and VID does when the sizes differ.
    """
    size = (min(first.shape[2], second.shape[2]), min(first.shape[3], second.shape[3]))
    if tuple(first.shape[2:]) != size:
        first = F.adaptive_avg_pool2d(first, size)
    if tuple(second.shape[2:]) != size:
        second = F.adaptive_avg_pool2d(second, size)
    return first, second


# -- NST ----------------------------------------------------------------------------
def _polynomial_kernel_mean(a: Tensor, b: Tensor, degree: int, c: float) -> Tensor:
    """Mean over the batch and over all pairs ``(i, j)`` of ``(<a_i, b_j> + c)^degree``."""
    return (a @ b.transpose(1, 2) + c).pow(degree).mean()


def nst_loss(student_feature: Tensor, teacher_feature: Tensor, degree: int = 2, c: float = 0.0) -> Tensor:
    r"""Neuron selectivity transfer of Huang & Wang, "Like What You Like" (2017).

    Each channel of a feature map is one sample :math:`f^{i} \in \mathbb{R}^{HW}`
    of the layer's "selectivity" distribution, L2-normalised. The loss is the
    squared maximum mean discrepancy between the student's :math:`C_s` and the
    teacher's :math:`C_t` channel vectors with the polynomial kernel
    :math:`k(x, y) = (x^\top y + c)^d`:

    .. math::
        \frac{1}{C_t^2}\sum_{i,i'} k(t^i, t^{i'}) + \frac{1}{C_s^2}\sum_{j,j'} k(s^j, s^{j'})
        - \frac{2}{C_s C_t}\sum_{i,j} k(s^j, t^i)

    averaged over the batch. Channel counts may differ; if the spatial sizes
    differ, the larger map is average-pooled to the smaller one first.

    Args:
        student_feature: student activations ``[B, C_s, H, W]``.
        teacher_feature: teacher activations ``[B, C_t, H', W']``.
        degree: :math:`d` (2 in the paper).
        c: :math:`c` (0 in the paper).
    """
    fn = "nst_loss"
    _check_maps(student_feature, teacher_feature, fn)
    if int(degree) != degree or degree < 1:
        raise ValueError(f"{fn}: degree must be a whole number >= 1, got {degree}")
    student, teacher = pool_to_smaller(student_feature.float(), teacher_feature.float())
    s = F.normalize(student.flatten(2), dim=2)
    t = F.normalize(teacher.flatten(2), dim=2)
    degree = int(degree)
    return (
        _polynomial_kernel_mean(t, t, degree, c)
        + _polynomial_kernel_mean(s, s, degree, c)
        - 2 * _polynomial_kernel_mean(s, t, degree, c)
    )


# -- CC -----------------------------------------------------------------------------
def taylor_rbf_correlation(embedding: Tensor, gamma: float = 0.4, order: int = 2) -> Tensor:
    r"""``[B, B]`` correlations of L2-normalised embeddings under a Taylor-expanded Gaussian RBF kernel.

    For unit vectors :math:`\exp(-\gamma\|x - y\|^2) = e^{-2\gamma} e^{2\gamma x^\top y}`, expanded to order :math:`P`:

    .. math::
        k(x, y) \approx \sum_{p=0}^{P} e^{-2\gamma} \frac{(2\gamma)^p}{p!} (x^\top y)^p

    Args:
        embedding: ``[B, ...]``, flattened to ``[B, D]`` and L2-normalised per row.
        gamma: the kernel's :math:`\gamma` > 0.
        order: the expansion order :math:`P` >= 0.
    """
    fn = "taylor_rbf_correlation"
    gamma = _check_positive(gamma, "gamma", fn)
    if int(order) != order or order < 0:
        raise ValueError(f"{fn}: order must be a whole number >= 0, got {order}")
    unit = F.normalize(embedding.float().reshape(embedding.shape[0], -1), dim=1)
    similarity = unit @ unit.t()
    correlation = torch.zeros_like(similarity)
    for p in range(int(order) + 1):
        correlation = correlation + (2 * gamma) ** p / math.factorial(p) * similarity.pow(p)
    return math.exp(-2 * gamma) * correlation


def cc_loss(student_embedding: Tensor, teacher_embedding: Tensor, gamma: float = 0.4, order: int = 2) -> Tensor:
    r"""Correlation congruence of Peng et al., "Correlation Congruence for Knowledge Distillation" (ICCV 2019).

    .. math::
        \frac{1}{B^2}\big\|\psi(E_s) - \psi(E_t)\big\|_F^2

    with :math:`\psi` the ``[B, B]`` matrix of :func:`taylor_rbf_correlation`
    (the mean squared error between the two correlation matrices). The
    embedding widths may differ.

    Args:
        student_embedding: ``[B, ...]``.
        teacher_embedding: ``[B, ...]``.
        gamma: the RBF kernel's :math:`\gamma` (0.4).
        order: the Taylor expansion order (2).
    """
    fn = "cc_loss"
    if student_embedding.dim() < 2 or teacher_embedding.dim() < 2 or len(student_embedding) != len(teacher_embedding):
        raise ValueError(
            f"{fn}: expects embeddings [B, ...] with the same batch size, got student "
            f"{tuple(student_embedding.shape)} and teacher {tuple(teacher_embedding.shape)}"
        )
    return F.mse_loss(
        taylor_rbf_correlation(student_embedding, gamma, order),
        taylor_rbf_correlation(teacher_embedding, gamma, order),
    )


# -- FSP ----------------------------------------------------------------------------
def fsp_matrix(first: Tensor, second: Tensor) -> Tensor:
    r"""The "flow of solution procedure" matrix of Yim et al. (CVPR 2017): ``[B, C_1, C_2]``.

    .. math::
        G_{ij} = \frac{1}{HW}\sum_{h, w} F^1_{i,h,w} F^2_{j,h,w}

    If the two maps differ in height or width, the larger is average-pooled to the smaller.

    Args:
        first: the feature map where the flow starts, ``[B, C_1, H, W]``.
        second: the feature map where it ends, ``[B, C_2, H', W']``.
    """
    _check_maps(first, second, "fsp_matrix")
    first, second = pool_to_smaller(first.float(), second.float())
    a, b = first.flatten(2), second.flatten(2)
    return a @ b.transpose(1, 2) / a.shape[2]


def fsp_loss(student_first: Tensor, student_second: Tensor, teacher_first: Tensor, teacher_second: Tensor) -> Tensor:
    """Mean squared error between the student's and the teacher's FSP matrices (:func:`fsp_matrix`).

    The student's channel counts must equal the teacher's (map them with a 1×1
    convolution first when they do not; :class:`distill.losses.FSP` does).
    """
    student = fsp_matrix(student_first, student_second)
    teacher = fsp_matrix(teacher_first, teacher_second)
    if student.shape != teacher.shape:
        raise ValueError(
            f"fsp_loss: the student's FSP matrix {tuple(student.shape)} and the teacher's "
            f"{tuple(teacher.shape)} differ; the channel counts of the two pairs must match"
        )
    return F.mse_loss(student, teacher)


# -- AB -----------------------------------------------------------------------------
def ab_loss(student_preactivation: Tensor, teacher_feature: Tensor, margin: float = 1.0) -> Tensor:
    r"""Activation-boundary loss of Heo et al., "Knowledge Transfer via Distillation of Activation Boundaries" (AAAI 2019).

    A neuron is active where the teacher's value is > 0 (a pre-activation, or
    equally the output of a ReLU, which is > 0 exactly where its input is).
    With :math:`s` the student's (connected) pre-activations and margin :math:`\mu`:

    .. math::
        \sum \Big[(s + \mu)^2\,\mathbb{1}[s > -\mu,\ t \le 0] + (s - \mu)^2\,\mathbb{1}[s \le \mu,\ t > 0]\Big]

    summed over the neurons of a sample and averaged over the batch: the
    student is pushed below :math:`-\mu` where the teacher is inactive and
    above :math:`\mu` where it is active.

    Args:
        student_preactivation: student values ``[B, ...]``, already mapped to the teacher's shape.
        teacher_feature: teacher pre-activations (or ReLU outputs), same shape.
        margin: :math:`\mu` >= 0 (1 in the paper).
    """
    fn = "ab_loss"
    if student_preactivation.shape != teacher_feature.shape:
        raise ValueError(
            f"{fn}: the student's values {tuple(student_preactivation.shape)} must have the teacher's "
            f"shape {tuple(teacher_feature.shape)} (map them with a connector first)"
        )
    margin = float(margin)
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"{fn}: margin must be a finite number >= 0, got {margin}")
    s, active = student_preactivation.float(), teacher_feature > 0
    loss = (s + margin).pow(2) * ((s > -margin) & ~active) + (s - margin).pow(2) * ((s <= margin) & active)
    return loss.sum() / s.shape[0]


# -- FT -----------------------------------------------------------------------------
def ft_loss(student_factor: Tensor, teacher_factor: Tensor, p: float = 1.0) -> Tensor:
    r"""Factor transfer of Kim et al., "Paraphrasing Complex Network: Network Compression via Factor Transfer" (NeurIPS 2018).

    Each factor is flattened to a vector per sample and L2-normalised;

    .. math::
        \mathrm{mean}\Big(\Big|\frac{F_s}{\|F_s\|_2} - \frac{F_t}{\|F_t\|_2}\Big|^p\Big)

    over the batch and the elements, i.e. the paper's :math:`\|\cdot\|_p^p`
    distance divided by the number of elements, as in the authors' code
    (``nn.L1Loss`` for :math:`p = 1`).

    Args:
        student_factor: the translator's output ``[B, ...]``.
        teacher_factor: the paraphraser's factor, same shape.
        p: the norm's exponent (1 in the paper).
    """
    fn = "ft_loss"
    if student_factor.shape != teacher_factor.shape:
        raise ValueError(
            f"{fn}: the student's factor {tuple(student_factor.shape)} and the teacher's "
            f"{tuple(teacher_factor.shape)} must have the same shape"
        )
    p = _check_positive(p, "p", fn)
    s = F.normalize(student_factor.float().reshape(student_factor.shape[0], -1), dim=1)
    t = F.normalize(teacher_factor.float().reshape(teacher_factor.shape[0], -1), dim=1)
    return (s - t).abs().pow(p).mean()


# -- VID ----------------------------------------------------------------------------
def vid_loss(predicted_mean: Tensor, teacher_feature: Tensor, variance: Tensor) -> Tensor:
    r"""Variational information distillation of Ahn et al. (CVPR 2019): a Gaussian negative log-likelihood.

    The teacher's feature is modelled as :math:`\mathcal{N}(\mu(s), \sigma_c^2)`
    with the mean regressed from the student and one variance per channel:

    .. math::
        \mathrm{mean}\Big(\frac{(t - \mu)^2}{2\sigma_c^2} + \frac{1}{2}\log \sigma_c^2\Big)

    over the batch, channels and positions (the constant :math:`\tfrac12\log 2\pi` is left out).

    Args:
        predicted_mean: :math:`\mu`, ``[B, C, ...]``.
        teacher_feature: :math:`t`, the same shape.
        variance: :math:`\sigma^2_c` > 0, ``[C]``.
    """
    fn = "vid_loss"
    if predicted_mean.shape != teacher_feature.shape:
        raise ValueError(
            f"{fn}: the predicted mean {tuple(predicted_mean.shape)} must have the teacher's shape "
            f"{tuple(teacher_feature.shape)}"
        )
    if variance.dim() != 1 or predicted_mean.dim() < 2 or variance.shape[0] != predicted_mean.shape[1]:
        raise ValueError(
            f"{fn}: variance must hold one value per channel, {predicted_mean.shape[1] if predicted_mean.dim() > 1 else '?'}, "
            f"got shape {tuple(variance.shape)}"
        )
    var = variance.float().reshape(1, -1, *([1] * (predicted_mean.dim() - 2)))
    difference = predicted_mean.float() - teacher_feature.float()
    return (0.5 * (difference.pow(2) / var + var.log())).mean()


# -- CRD ----------------------------------------------------------------------------
def crd_scores(anchor: Tensor, candidates: Tensor, temperature: float = 0.07) -> Tensor:
    r"""Unnormalised NCE scores :math:`\exp(\langle c_k, a\rangle / \tau)`, ``[B, K+1]``.

    Args:
        anchor: ``[B, D]`` embeddings of one side.
        candidates: ``[B, K+1, D]`` embeddings of the other side (positive first).
        temperature: :math:`\tau` > 0 (0.07 in the paper).
    """
    fn = "crd_scores"
    temperature = _check_positive(temperature, "temperature", fn)
    if anchor.dim() != 2 or candidates.dim() != 3 or candidates.shape[0] != anchor.shape[0] or candidates.shape[2] != anchor.shape[1]:
        raise ValueError(
            f"{fn}: expects anchor [B, D] and candidates [B, K+1, D], got {tuple(anchor.shape)} "
            f"and {tuple(candidates.shape)}"
        )
    return torch.exp(torch.bmm(candidates.float(), anchor.float().unsqueeze(2)).squeeze(2) / temperature)


def crd_nce_loss(scores: Tensor, num_samples: int, eps: float = 1e-7) -> Tensor:
    r"""The NCE objective of Tian et al., "Contrastive Representation Distillation" (ICLR 2020), eq. 18.

    ``scores[:, 0]`` is the normalised score :math:`P` of the positive pair and
    ``scores[:, 1:]`` those of :math:`K` negatives drawn uniformly from the
    :math:`N` = ``num_samples`` training samples (noise density :math:`1/N`):

    .. math::
        -\frac{1}{B}\sum_b\Big[\log\frac{P_{b0}}{P_{b0} + K/N}
        + \sum_{k=1}^{K}\log\frac{K/N}{P_{bk} + K/N}\Big]

    (``eps`` is added to each denominator).

    Args:
        scores: ``[B, 1 + K]`` positive scores, normalised by the constant :math:`Z`.
        num_samples: :math:`N`, the number of training samples.
        eps: numerical guard.
    """
    fn = "crd_nce_loss"
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"{fn}: expects scores [B, 1 + K] with K >= 1, got {tuple(scores.shape)}")
    if int(num_samples) < 1:
        raise ValueError(f"{fn}: num_samples must be >= 1, got {num_samples}")
    scores = scores.float()
    noise = (scores.shape[1] - 1) / float(num_samples)
    positive = torch.log(scores[:, 0] / (scores[:, 0] + noise + eps))
    negative = torch.log(noise / (scores[:, 1:] + noise + eps))
    return -(positive.sum() + negative.sum()) / scores.shape[0]


# -- ReviewKD -----------------------------------------------------------------------
def hcl_loss(student_features: Sequence[Tensor], teacher_features: Sequence[Tensor], levels: Sequence[int] = (4, 2, 1)) -> Tensor:
    r"""Hierarchical context loss of Chen et al., "Distilling Knowledge via Knowledge Review" (CVPR 2021).

    For each pair of ``[B, C, H, W]`` maps: the mean squared error of the
    maps themselves (weight 1) plus, for each pooling size :math:`l` in
    ``levels`` smaller than :math:`H`, the mean squared error of the maps
    adaptive-average-pooled to :math:`l \times l`, with weights halving from
    1/2; divided by the sum of the weights. The pairs are summed.

    Args:
        student_features: the student's (fused) maps, each with its teacher map's shape.
        teacher_features: the teacher's maps.
        levels: the pyramid's pooled sizes (4, 2, 1 as in the official code).
    """
    fn = "hcl_loss"
    if len(student_features) != len(teacher_features) or not student_features:
        raise ValueError(
            f"{fn}: expects equally many (and at least one) student and teacher maps, got "
            f"{len(student_features)} and {len(teacher_features)}"
        )
    total = torch.zeros((), device=student_features[0].device)
    for s, t in zip(student_features, teacher_features):
        if s.shape != t.shape or s.dim() != 4:
            raise ValueError(
                f"{fn}: each student map must be [B, C, H, W] with its teacher map's shape, got "
                f"{tuple(s.shape)} and {tuple(t.shape)}"
            )
        s, t = s.float(), t.float()
        loss, weight, weights = F.mse_loss(s, t), 1.0, 1.0
        for level in levels:
            if level >= s.shape[2]:
                continue
            weight /= 2.0
            loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(s, level), F.adaptive_avg_pool2d(t, level))
            weights += weight
        total = total + loss / weights
    return total
