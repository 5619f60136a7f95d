"""The relation losses (NST, CC, FSP, AB, FT, VID, CRD, ReviewKD's HCL) against hand-worked values and loops."""

from __future__ import annotations

import math

import pytest
import torch

from distill.losses.functional import (
    ab_loss,
    cc_loss,
    crd_nce_loss,
    crd_scores,
    fsp_loss,
    fsp_matrix,
    ft_loss,
    hcl_loss,
    nst_loss,
    taylor_rbf_correlation,
    vid_loss,
)


def block_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average ``[B, C, H, W]`` over ``size``×``size`` blocks of (H/size)×(W/size), written out by reshaping."""
    b, c, h, w = x.shape
    return x.reshape(b, c, size, h // size, size, w // size).mean(dim=(3, 5))


def unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


# -- NST ---------------------------------------------------------------------------------
def hand_nst(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """MMD² with k(x, y) = (x·y)², written with Python loops over samples and channels."""
    total = 0.0
    for s_maps, t_maps in zip(student.tolist(), teacher.tolist()):
        s = [unit([v for row in ch for v in row]) for ch in s_maps]
        t = [unit([v for row in ch for v in row]) for ch in t_maps]

        def k(a, b):
            return sum(x * y for x, y in zip(a, b)) ** 2

        tt = sum(k(a, b) for a in t for b in t) / len(t) ** 2
        ss = sum(k(a, b) for a in s for b in s) / len(s) ** 2
        st = sum(k(a, b) for a in s for b in t) / (len(s) * len(t))
        total += tt + ss - 2 * st
    return total / len(student)


def test_nst_matches_loops_with_different_channel_counts():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 3, 2, 2), torch.randn(2, 5, 2, 2)
    assert nst_loss(student, teacher).item() == pytest.approx(hand_nst(student, teacher), rel=1e-5)


def test_nst_pools_the_larger_map():
    torch.manual_seed(1)
    student, teacher = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 2, 2)
    expected = hand_nst(block_mean(student, 2), teacher)
    assert nst_loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_nst_is_zero_for_the_same_channels_in_another_order():
    feature = torch.randn(2, 4, 3, 3)
    assert nst_loss(feature, feature.flip(1)).item() == pytest.approx(0.0, abs=1e-6)


# -- CC ----------------------------------------------------------------------------------
def test_taylor_rbf_order_two_by_hand():
    # unit vectors with cosines 0 (x, y), 1/sqrt2 (x, z and y, z), 1 (each with itself)
    embedding = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    gamma = 0.4

    def k(c):
        return math.exp(-2 * gamma) * (1 + 2 * gamma * c + (2 * gamma) ** 2 / 2 * c * c)

    r = 1 / math.sqrt(2)
    expected = torch.tensor([[k(1), k(0), k(r)], [k(0), k(1), k(r)], [k(r), k(r), k(1)]])
    torch.testing.assert_close(taylor_rbf_correlation(embedding, gamma, 2), expected)


def test_taylor_rbf_of_high_order_approaches_the_gaussian_kernel():
    torch.manual_seed(0)
    embedding = torch.randn(5, 7)
    x = embedding / embedding.norm(dim=1, keepdim=True)
    exact = torch.exp(-0.4 * torch.cdist(x, x).pow(2))
    torch.testing.assert_close(taylor_rbf_correlation(embedding, 0.4, 12), exact, atol=1e-6, rtol=1e-5)


def test_cc_loss_is_the_mean_squared_difference_of_the_correlations():
    torch.manual_seed(0)
    s, t = torch.randn(4, 6), torch.randn(4, 9)

    def corr(e):
        rows = [unit(r) for r in e.tolist()]
        return [
            [math.exp(-0.8) * sum((0.8**p) / math.factorial(p) * sum(x * y for x, y in zip(a, b)) ** p for p in range(3)) for b in rows]
            for a in rows
        ]

    cs, ct = corr(s), corr(t)
    expected = sum((cs[i][j] - ct[i][j]) ** 2 for i in range(4) for j in range(4)) / 16
    assert cc_loss(s, t).item() == pytest.approx(expected, rel=1e-5)


# -- FSP ---------------------------------------------------------------------------------
def test_fsp_matrix_matches_loops():
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 2, 3), torch.randn(2, 4, 2, 3)
    expected = torch.zeros(2, 3, 4)
    for n in range(2):
        for i in range(3):
            for j in range(4):
                expected[n, i, j] = sum(a[n, i, h, w] * b[n, j, h, w] for h in range(2) for w in range(3)) / 6
    torch.testing.assert_close(fsp_matrix(a, b), expected)


def test_fsp_loss_pools_and_averages():
    torch.manual_seed(0)
    s1, s2 = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 2, 2)
    t1, t2 = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 2, 2)
    gs = torch.einsum("nihw,njhw->nij", block_mean(s1, 2), s2) / 4
    gt = torch.einsum("nihw,njhw->nij", block_mean(t1, 2), t2) / 4
    assert fsp_loss(s1, s2, t1, t2).item() == pytest.approx(((gs - gt) ** 2).mean().item(), rel=1e-5)


def test_fsp_loss_needs_equal_channel_counts():
    with pytest.raises(ValueError, match="channel counts"):
        fsp_loss(torch.randn(1, 2, 2, 2), torch.randn(1, 2, 2, 2), torch.randn(1, 3, 2, 2), torch.randn(1, 2, 2, 2))


# -- AB ----------------------------------------------------------------------------------
def test_ab_loss_by_hand():
    # margin 1: (-2 | t<=0) 0, (-0.5 | t=0) (0.5)^2, (0.5 | t>0) (0.5)^2, (2 | t>0) 0
    # second sample: (0 | t<=0) 1, (-3 | t>0) 16, (1 | t<=0) 4, (1 | t>0) 0
    source = torch.tensor([[-2.0, -0.5, 0.5, 2.0], [0.0, -3.0, 1.0, 1.0]])
    target = torch.tensor([[-1.0, 0.0, 1.0, 3.0], [-5.0, 2.0, -1.0, 0.5]])
    expected = (0.25 + 0.25 + 1 + 16 + 4) / 2
    assert ab_loss(source, target, margin=1.0).item() == pytest.approx(expected)


def test_ab_loss_gradient_reaches_only_the_wrong_side():
    source = torch.tensor([[-2.0, 2.0]], requires_grad=True)
    ab_loss(source, torch.tensor([[-1.0, 1.0]])).backward()  # both already beyond the margin
    assert source.grad.abs().sum() == 0


# -- FT ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("p", "expected"), [(1.0, (0.4 + 0.8) / 2), (2.0, (0.16 + 0.64) / 2)])
def test_ft_loss_by_hand(p, expected):
    # (3, 4) normalises to (0.6, 0.8), (5, 0) to (1, 0): differences 0.4 and 0.8
    student, teacher = torch.tensor([[3.0, 4.0]]), torch.tensor([[5.0, 0.0]])
    assert ft_loss(student, teacher, p).item() == pytest.approx(expected)


def test_ft_loss_normalises_each_sample_over_all_its_elements():
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)
    flat_s, flat_t = s.reshape(2, -1), t.reshape(2, -1)
    expected = (flat_s / flat_s.norm(dim=1, keepdim=True) - flat_t / flat_t.norm(dim=1, keepdim=True)).abs().mean()
    assert ft_loss(s * 7, t, 1.0).item() == pytest.approx(expected.item(), rel=1e-5)


# -- VID ---------------------------------------------------------------------------------
def test_vid_loss_by_hand():
    # mu 0, t 2, sigma^2 4: 0.5 * (4 / 4 + ln 4)
    value = vid_loss(torch.zeros(1, 1, 1, 1), torch.full((1, 1, 1, 1), 2.0), torch.tensor([4.0]))
    assert value.item() == pytest.approx(0.5 * (1 + math.log(4)))


def test_vid_loss_is_the_gaussian_negative_log_likelihood_without_its_constant():
    torch.manual_seed(0)
    mean, target, variance = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2), torch.rand(3) + 0.5
    normal = torch.distributions.Normal(mean, variance.sqrt().view(1, 3, 1, 1))
    expected = (-normal.log_prob(target) - 0.5 * math.log(2 * math.pi)).mean()
    assert vid_loss(mean, target, variance).item() == pytest.approx(expected.item(), rel=1e-5)


# -- CRD ---------------------------------------------------------------------------------
def test_crd_scores_match_loops():
    torch.manual_seed(0)
    anchor, candidates = torch.randn(2, 3), torch.randn(2, 4, 3)
    expected = [
        [math.exp(sum(a * c for a, c in zip(anchor[b].tolist(), candidates[b, k].tolist())) / 0.07) for k in range(4)]
        for b in range(2)
    ]
    torch.testing.assert_close(crd_scores(anchor, candidates, 0.07), torch.tensor(expected), rtol=1e-4, atol=0)


def test_crd_nce_loss_by_hand():
    # N = 4 samples, K = 2 negatives: noise K/N = 0.5
    scores = torch.tensor([[1.5, 0.5, 0.25], [0.5, 1.0, 0.0]])
    expected = 0.0
    for p0, p1, p2 in scores.tolist():
        expected -= math.log(p0 / (p0 + 0.5)) + math.log(0.5 / (p1 + 0.5)) + math.log(0.5 / (p2 + 0.5))
    assert crd_nce_loss(scores, num_samples=4).item() == pytest.approx(expected / 2, rel=1e-5)


# -- HCL ---------------------------------------------------------------------------------
def test_hcl_loss_by_levels():
    torch.manual_seed(0)
    s8, t8 = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    s4, t4 = torch.randn(2, 5, 4, 4), torch.randn(2, 5, 4, 4)
    s1, t1 = torch.randn(2, 7, 1, 1), torch.randn(2, 7, 1, 1)

    def mse(a, b):
        return ((a - b) ** 2).mean().item()

    # 8x8: the map, then 4x4, 2x2 and 1x1 poolings with weights 1/2, 1/4, 1/8
    level8 = (mse(s8, t8) + mse(block_mean(s8, 4), block_mean(t8, 4)) / 2
              + mse(block_mean(s8, 2), block_mean(t8, 2)) / 4 + mse(block_mean(s8, 1), block_mean(t8, 1)) / 8) / 1.875
    # 4x4: the 4x4 pooling is skipped (not smaller than the map)
    level4 = (mse(s4, t4) + mse(block_mean(s4, 2), block_mean(t4, 2)) / 2 + mse(block_mean(s4, 1), block_mean(t4, 1)) / 4) / 1.75
    level1 = mse(s1, t1)
    value = hcl_loss([s8, s4, s1], [t8, t4, t1])
    assert value.item() == pytest.approx(level8 + level4 + level1, rel=1e-5)


@pytest.mark.parametrize(
    "call",
    [
        lambda: nst_loss(torch.randn(2, 3), torch.randn(2, 3)),
        lambda: nst_loss(torch.randn(2, 3, 2, 2), torch.randn(3, 3, 2, 2)),
        lambda: ab_loss(torch.randn(2, 3), torch.randn(2, 4)),
        lambda: ft_loss(torch.randn(2, 3), torch.randn(2, 4)),
        lambda: vid_loss(torch.randn(2, 3, 1, 1), torch.randn(2, 3, 1, 1), torch.ones(2)),
        lambda: crd_nce_loss(torch.rand(2, 1), 10),
        lambda: hcl_loss([torch.randn(1, 2, 2, 2)], [torch.randn(1, 3, 2, 2)]),
        lambda: cc_loss(torch.randn(2, 3), torch.randn(3, 3)),
    ],
)
def test_shape_mistakes_raise_value_errors(call):
    with pytest.raises(ValueError):
        call()
