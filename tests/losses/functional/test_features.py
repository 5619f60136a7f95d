"""Feature losses against independent implementations (numpy, loops) and hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distill.losses.functional import (
    activation_penalty,
    attention_transfer_loss,
    hint_loss,
    pkt_loss,
    rkd_loss,
    similarity_preserving_loss,
)


def as_np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def smooth_l1(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


# -- hints ------------------------------------------------------------------------


def test_hint_loss_by_hand():
    # differences 1, -2, 0, 3 -> (1 + 4 + 0 + 9) / 4
    student = torch.tensor([[1.0, 0.0], [2.0, 5.0]])
    teacher = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    assert hint_loss(student, teacher).item() == pytest.approx(14 / 4)


def test_hint_loss_matches_numpy_on_feature_maps():
    torch.manual_seed(0)
    student, teacher = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    expected = np.mean((as_np(student) - as_np(teacher)) ** 2)
    assert hint_loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_hint_loss_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 8, 4, 4\).*\(2, 16, 4, 4\)"):
        hint_loss(torch.zeros(2, 8, 4, 4), torch.zeros(2, 16, 4, 4))


# -- attention transfer ------------------------------------------------------------


def numpy_attention(feature: np.ndarray, p: float, block: int) -> np.ndarray:
    """Features averaged over block x block squares first, then the mean over channels of |f|^p, L2-normalised."""
    b, c, h, w = feature.shape
    pooled = feature.reshape(b, c, h // block, block, w // block, block).mean(axis=(3, 5))
    amap = (np.abs(pooled) ** p).mean(axis=1).reshape(b, -1)
    return amap / np.linalg.norm(amap, axis=1, keepdims=True)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_attention_transfer_pools_the_features_first_with_different_channels_and_sizes(p):
    # the reference code (the authors', RepDistiller, mdistiller) pools the larger *features* to the
    # smaller size and then forms the attention maps
    torch.manual_seed(1)
    student = torch.randn(2, 3, 8, 8)  # larger features: pooled 2x2 -> 4x4
    teacher = torch.randn(2, 7, 4, 4)
    a_s, a_t = numpy_attention(as_np(student), p, 2), numpy_attention(as_np(teacher), p, 1)
    expected = np.mean((a_s - a_t) ** 2)
    assert attention_transfer_loss(student, teacher, p=p).item() == pytest.approx(expected, rel=1e-5)
    # symmetric in which side is larger
    a_t2 = numpy_attention(as_np(student), p, 2)
    a_s2 = numpy_attention(as_np(teacher), p, 1)
    assert attention_transfer_loss(teacher, student, p=p).item() == pytest.approx(np.mean((a_s2 - a_t2) ** 2), rel=1e-5)


def test_attention_transfer_pooling_the_features_differs_from_pooling_the_maps():
    # the two orders give different values (the issue measured 0.0111 vs 0.0268): the loss must take the first
    torch.manual_seed(1)
    student, teacher = torch.randn(2, 3, 8, 8), torch.randn(2, 7, 4, 4)
    maps_first = np.abs(as_np(student)) ** 2
    maps_first = maps_first.mean(axis=1).reshape(2, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(2, -1)
    maps_first /= np.linalg.norm(maps_first, axis=1, keepdims=True)
    pooled_maps = np.mean((maps_first - numpy_attention(as_np(teacher), 2.0, 1)) ** 2)
    features_first = np.mean((numpy_attention(as_np(student), 2.0, 2) - numpy_attention(as_np(teacher), 2.0, 1)) ** 2)
    assert abs(pooled_maps - features_first) > 1e-3 * features_first
    assert attention_transfer_loss(student, teacher).item() == pytest.approx(features_first, rel=1e-5)


def test_attention_transfer_by_hand():
    # one channel, 1x2 maps: student [1, 0] -> a = [1, 0]; teacher [1, 1] -> a = [1, 1]/sqrt 2
    student = torch.tensor([[[[1.0, 0.0]]]])
    teacher = torch.tensor([[[[1.0, 1.0]]]])
    r = 1 / math.sqrt(2)
    expected = ((1 - r) ** 2 + r**2) / 2
    assert attention_transfer_loss(student, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_attention_transfer_ignores_scale_and_channel_count():
    torch.manual_seed(2)
    feature = torch.randn(2, 4, 3, 3)
    teacher = torch.cat([feature, feature], dim=1) * 5  # twice the channels, same map up to scale
    assert attention_transfer_loss(feature, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_attention_transfer_rejects_non_maps_and_bad_p():
    with pytest.raises(ValueError, match=r"\(2, 8\).*\(2, 4, 3, 3\)"):
        attention_transfer_loss(torch.zeros(2, 8), torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="p must be"):
        attention_transfer_loss(torch.ones(2, 1, 2, 2), torch.ones(2, 1, 2, 2), p=0)


# -- similarity preserving ----------------------------------------------------------


def numpy_sp(student: np.ndarray, teacher: np.ndarray) -> float:
    def gram(feature):
        flat = feature.reshape(len(feature), -1)
        g = flat @ flat.T
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    b = len(student)
    return float(np.sum((gram(student) - gram(teacher)) ** 2) / b**2)


def test_similarity_preserving_matches_numpy():
    torch.manual_seed(3)
    student, teacher = torch.randn(6, 4, 3, 3), torch.randn(6, 10, 2, 2)
    expected = numpy_sp(as_np(student), as_np(teacher))
    assert similarity_preserving_loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_similarity_preserving_by_hand():
    # student rows orthogonal: G = I; teacher rows equal: G = all 1/sqrt(2)
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    r = 1 / math.sqrt(2)
    expected = (2 * (1 - r) ** 2 + 2 * r**2) / 4
    assert similarity_preserving_loss(student, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_batch_size_mismatch_names_both_shapes():
    for fn in (similarity_preserving_loss, rkd_loss, pkt_loss, attention_transfer_loss):
        with pytest.raises(ValueError, match=r"\(3, 4, 2, 2\).*\(5, 4, 2, 2\)"):
            fn(torch.zeros(3, 4, 2, 2), torch.zeros(5, 4, 2, 2))


# -- RKD -------------------------------------------------------------------------------


def loop_rkd(student: list[list[float]], teacher: list[list[float]], wd: float, wa: float) -> float:
    """RKD from the paper's definitions, with explicit pair and triple loops in plain Python."""
    b = len(student)

    def dist(e, i, j):
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(e[i], e[j])))

    def normalised_distances(e):
        d = [[dist(e, i, j) for j in range(b)] for i in range(b)]
        positive = [v for row in d for v in row if v > 0]
        mu = sum(positive) / len(positive)
        return [[v / mu for v in row] for row in d]

    def unit(e, anchor, other):
        diff = [x - y for x, y in zip(e[other], e[anchor])]
        norm = math.sqrt(sum(v * v for v in diff))
        return [v / norm for v in diff] if norm > 0 else [0.0] * len(diff)

    def angles(e):
        values = []
        for i in range(b):  # anchor
            for j in range(b):
                for k in range(b):
                    values.append(sum(x * y for x, y in zip(unit(e, i, j), unit(e, i, k))))
        return values

    ds, dt = normalised_distances(student), normalised_distances(teacher)
    distance = sum(smooth_l1(ds[i][j] - dt[i][j]) for i in range(b) for j in range(b)) / b**2
    a_s, a_t = angles(student), angles(teacher)
    angle = sum(smooth_l1(x - y) for x, y in zip(a_s, a_t)) / b**3
    return wd * distance + wa * angle


def test_rkd_matches_triple_loops():
    torch.manual_seed(4)
    student, teacher = torch.randn(4, 3), torch.randn(4, 5) * 2
    expected = loop_rkd(student.tolist(), teacher.tolist(), 25.0, 50.0)
    assert rkd_loss(student, teacher).item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(("wd", "wa"), [(1.0, 0.0), (0.0, 1.0)])
def test_rkd_parts_separately(wd, wa):
    torch.manual_seed(5)
    student, teacher = torch.randn(4, 2, 1, 1), torch.randn(4, 6, 1, 1)  # flattened to [B, -1]
    expected = loop_rkd(student.flatten(1).tolist(), teacher.flatten(1).tolist(), wd, wa)
    assert rkd_loss(student, teacher, wd, wa).item() == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_rkd_distance_part_by_hand():
    # student: three points on a line at 0, 1, 2: distances 1,1,2 (each twice), mean 4/3
    # teacher: an equilateral triangle: all normalised distances 1
    student = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    # normalised student distances 3/4, 3/4, 3/2 -> differences -1/4, -1/4, 1/2, each twice
    expected = 2 * (smooth_l1(-0.25) * 2 + smooth_l1(0.5)) / 9
    assert rkd_loss(student, teacher, 1.0, 0.0).item() == pytest.approx(expected, rel=1e-5)


def test_rkd_is_invariant_to_scale_and_translation():
    torch.manual_seed(6)
    embedding = torch.randn(5, 4)
    assert rkd_loss(embedding, embedding * 3 + 1).item() == pytest.approx(0.0, abs=1e-5)


def test_rkd_gradients_stay_finite_with_duplicate_samples():
    student = torch.randn(3, 4)
    student = torch.cat([student, student[:1]]).requires_grad_(True)
    rkd_loss(student, torch.randn(4, 8)).backward()
    assert torch.isfinite(student.grad).all()


# -- PKT --------------------------------------------------------------------------------


def numpy_pkt(student: np.ndarray, teacher: np.ndarray, eps: float = 1e-7) -> float:
    def conditional(e):
        e = e.reshape(len(e), -1)
        e = e / (np.sqrt((e**2).sum(axis=1, keepdims=True)) + eps)
        s = (e @ e.T + 1) / 2
        return s / s.sum(axis=1, keepdims=True)

    p_s, p_t = conditional(student), conditional(teacher)
    return float(np.mean(p_t * np.log((p_t + eps) / (p_s + eps))))


def test_pkt_matches_numpy():
    torch.manual_seed(7)
    student, teacher = torch.randn(6, 5), torch.randn(6, 3, 2, 2)
    expected = numpy_pkt(as_np(student), as_np(teacher))
    assert pkt_loss(student, teacher).item() == pytest.approx(expected, rel=1e-4)


def test_pkt_by_hand():
    # student: two orthogonal rows -> similarities [[1, 1/2], [1/2, 1]] -> p = [[2/3, 1/3], ...]
    # teacher: two equal rows -> similarities all 1 -> p = 1/2 everywhere
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    row = 0.5 * math.log(0.5 / (2 / 3)) + 0.5 * math.log(0.5 / (1 / 3))
    assert pkt_loss(student, teacher).item() == pytest.approx(2 * row / 4, rel=1e-4)


# -- activation penalty -------------------------------------------------------------------


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_activation_penalty_matches_numpy(p):
    torch.manual_seed(8)
    feature = torch.randn(2, 3, 4, 4)
    assert activation_penalty(feature, p).item() == pytest.approx(np.mean(np.abs(as_np(feature)) ** p), rel=1e-5)


def test_activation_penalty_by_hand_and_bad_p():
    assert activation_penalty(torch.tensor([[1.0, -2.0]])).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="p must be"):
        activation_penalty(torch.ones(2, 2), p=-1)


# -- dtypes ---------------------------------------------------------------------------------


def test_feature_losses_compute_in_float32():
    student, teacher = torch.randn(4, 3, 2, 2).half(), torch.randn(4, 5, 2, 2).bfloat16()
    for value in (
        attention_transfer_loss(student, teacher),
        similarity_preserving_loss(student, teacher),
        rkd_loss(student, teacher),
        pkt_loss(student, teacher),
        activation_penalty(student),
        hint_loss(student, student.bfloat16()),
    ):
        assert value.dtype == torch.float32 and value.dim() == 0 and torch.isfinite(value)
