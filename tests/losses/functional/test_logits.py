"""Each functional loss checked against hand-worked values or an independent numpy/loop version."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill.losses.functional import (
    bce_kd_loss,
    cosine_loss,
    dist_loss,
    dkd_loss,
    jsd_loss,
    kd_loss,
    logit_mse_loss,
    masked_bce_with_logits,
    reverse_kl_loss,
    soft_cross_entropy,
    tvd_loss,
)


def _np_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_kl(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    return (p * (np.log(p) - np.log(q))).sum(axis=axis)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


def _pair(*shape: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(*shape, generator=generator) * 2
    teacher = torch.randn(*shape, generator=generator) * 2
    return student, teacher


# numpy references for the per-position values of the token-level losses (class axis last)
def _ref_kd(s, t, temperature, beta=None):
    return _np_kl(_np_softmax(t / temperature), _np_softmax(s / temperature)) * temperature**2


def _ref_reverse_kl(s, t, temperature, beta=None):
    return _np_kl(_np_softmax(s / temperature), _np_softmax(t / temperature)) * temperature**2


def _ref_jsd(s, t, temperature, beta=0.5):
    p, q = _np_softmax(t / temperature), _np_softmax(s / temperature)
    m = beta * p + (1 - beta) * q
    return (beta * _np_kl(p, m) + (1 - beta) * _np_kl(q, m)) * temperature**2


def _ref_tvd(s, t, temperature, beta=None):
    return 0.5 * np.abs(_np_softmax(t / temperature) - _np_softmax(s / temperature)).sum(-1)


TOKEN_LOSSES = {
    "kd": (kd_loss, _ref_kd),
    "reverse_kl": (reverse_kl_loss, _ref_reverse_kl),
    "jsd": (jsd_loss, _ref_jsd),
    "tvd": (tvd_loss, _ref_tvd),
}


# -- hand-worked values: p = softmax([log 3, 0]) = [3/4, 1/4], q = softmax([0, 0]) = [1/2, 1/2]
HAND_STUDENT = torch.tensor([[0.0, 0.0]])
HAND_TEACHER = torch.tensor([[math.log(3.0), 0.0]])


def test_kd_by_hand():
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kd_loss(HAND_STUDENT, HAND_TEACHER).item() == pytest.approx(expected, rel=1e-5)


def test_reverse_kl_by_hand():
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert reverse_kl_loss(HAND_STUDENT, HAND_TEACHER).item() == pytest.approx(expected, rel=1e-5)


def test_jsd_by_hand():
    m = [0.625, 0.375]  # (p + q) / 2
    kl_pm = 0.75 * math.log(0.75 / m[0]) + 0.25 * math.log(0.25 / m[1])
    kl_qm = 0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])
    expected = 0.5 * kl_pm + 0.5 * kl_qm
    assert jsd_loss(HAND_STUDENT, HAND_TEACHER).item() == pytest.approx(expected, rel=1e-5)


def test_tvd_by_hand():
    assert tvd_loss(HAND_STUDENT, HAND_TEACHER).item() == pytest.approx(0.25, rel=1e-5)


def test_temperature_scales_kd_by_t_squared():
    # with T = 2 the teacher [2 log 3, 0] softens to [3/4, 1/4] again, and the loss is times 4
    teacher = torch.tensor([[2 * math.log(3.0), 0.0]])
    expected = 4 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert kd_loss(HAND_STUDENT, teacher, temperature=2.0).item() == pytest.approx(expected, rel=1e-5)


# -- token-level losses against numpy, every reduction
@pytest.mark.parametrize("name", TOKEN_LOSSES)
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_token_losses_match_numpy_in_every_reduction(name, temperature):
    fn, reference = TOKEN_LOSSES[name]
    student, teacher = _pair(4, 7)
    per_sample = reference(_np(student), _np(teacher), temperature)
    none = fn(student, teacher, temperature=temperature, reduction="none")
    assert none.shape == (4,)
    np.testing.assert_allclose(_np(none), per_sample, rtol=1e-4, atol=1e-6)
    total = fn(student, teacher, temperature=temperature, reduction="sum")
    assert total.item() == pytest.approx(per_sample.sum(), rel=1e-4)
    mean = fn(student, teacher, temperature=temperature)
    assert mean.item() == pytest.approx(per_sample.mean(), rel=1e-4)


@pytest.mark.parametrize("name", TOKEN_LOSSES)
def test_token_losses_on_tokens_with_a_mask(name):
    fn, reference = TOKEN_LOSSES[name]
    student, teacher = _pair(2, 5, 11)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    per_token = reference(_np(student), _np(teacher), 2.0)  # [2, 5]
    kept = per_token[mask.numpy().astype(bool)]
    got_none = fn(student, teacher, temperature=2.0, reduction="none", mask=mask)
    np.testing.assert_allclose(_np(got_none), per_token * mask.numpy(), rtol=1e-4, atol=1e-6)
    got_sum = fn(student, teacher, temperature=2.0, reduction="sum", mask=mask)
    assert got_sum.item() == pytest.approx(kept.sum(), rel=1e-4)
    got_mean = fn(student, teacher, temperature=2.0, mask=mask)
    assert got_mean.item() == pytest.approx(kept.mean(), rel=1e-4)


@pytest.mark.parametrize("name", TOKEN_LOSSES)
def test_masked_out_positions_do_not_matter(name):
    fn, _ = TOKEN_LOSSES[name]
    student, teacher = _pair(2, 4, 6)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]])
    changed = student.clone()
    changed[mask == 0] = 100.0  # e.g. garbage logits at padding
    assert fn(changed, teacher, mask=mask).item() == pytest.approx(fn(student, teacher, mask=mask).item())


def test_kd_on_dense_predictions_with_class_dim_1():
    student, teacher = _pair(2, 3, 4, 5)  # [B, C, H, W]
    s, t = _np(student), _np(teacher)
    expected = np.zeros((2, 4, 5))
    for b in range(2):
        for h in range(4):
            for w in range(5):
                p = _np_softmax(t[b, :, h, w] / 2.0)
                q = _np_softmax(s[b, :, h, w] / 2.0)
                expected[b, h, w] = _np_kl(p, q) * 4.0
    got = kd_loss(student, teacher, temperature=2.0, dim=1, reduction="none")
    assert got.shape == (2, 4, 5)
    np.testing.assert_allclose(_np(got), expected, rtol=1e-4, atol=1e-6)
    got_mean = kd_loss(student, teacher, temperature=2.0, dim=1)
    assert got_mean.item() == pytest.approx(expected.mean(), rel=1e-4)


def test_kd_matches_torch_kl_div_formulation():
    student, teacher = _pair(6, 9)
    expected = F.kl_div(
        F.log_softmax(student / 4.0, dim=1), F.softmax(teacher / 4.0, dim=1), reduction="batchmean"
    ) * 16.0
    assert kd_loss(student, teacher, temperature=4.0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_logit_mse_reductions():
    student, teacher = _pair(3, 4)
    squared = (_np(student) - _np(teacher)) ** 2
    np.testing.assert_allclose(_np(logit_mse_loss(student, teacher, reduction="none")), squared, rtol=1e-5)
    assert logit_mse_loss(student, teacher, reduction="sum").item() == pytest.approx(squared.sum(), rel=1e-5)
    assert logit_mse_loss(student, teacher).item() == pytest.approx(squared.mean(), rel=1e-5)


# -- JSD limits
def test_jsd_of_identical_inputs_is_zero():
    logits, _ = _pair(3, 8)
    for beta in (0.1, 0.5, 0.9):
        assert jsd_loss(logits, logits.clone(), beta=beta).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("beta", [0.0, 1e-8, 1e-4, 1 - 1e-4, 1.0])
def test_jsd_stays_finite_near_and_at_the_ends(beta):
    teacher, _ = _pair(3, 8)
    student = teacher.clone().mul_(-1).requires_grad_()
    loss = jsd_loss(student, teacher, beta=beta)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_jsd_small_beta_approaches_beta_times_forward_kl():
    student, teacher = _pair(4, 6)
    beta = 1e-4
    forward_kl = _ref_kd(_np(student), _np(teacher), 1.0).mean()
    got = jsd_loss(student, teacher, beta=beta).item()
    assert got == pytest.approx(_ref_jsd(_np(student), _np(teacher), 1.0, beta).mean(), rel=1e-3)
    assert got == pytest.approx(beta * forward_kl, rel=0.01)


@pytest.mark.parametrize("beta", [-0.1, 1.5, float("nan")])
def test_jsd_rejects_beta_outside_0_1(beta):
    student, teacher = _pair(2, 3)
    with pytest.raises(ValueError, match="beta"):
        jsd_loss(student, teacher, beta=beta)


# -- soft cross-entropy and BCE KD
def test_soft_cross_entropy_matches_numpy_and_one_hot_cross_entropy():
    student, teacher = _pair(5, 4)
    probs = torch.softmax(teacher, dim=1)
    log_q = np.log(_np_softmax(_np(student)))
    expected = -(_np(probs) * log_q).sum(-1)
    np.testing.assert_allclose(_np(soft_cross_entropy(student, probs, reduction="none")), expected, rtol=1e-5)
    got_sum = soft_cross_entropy(student, probs, reduction="sum")
    assert got_sum.item() == pytest.approx(expected.sum(), rel=1e-5)
    assert soft_cross_entropy(student, probs).item() == pytest.approx(expected.mean(), rel=1e-5)
    labels = torch.tensor([0, 3, 1, 2, 2])
    one_hot = F.one_hot(labels, 4).float()
    assert soft_cross_entropy(student, one_hot).item() == pytest.approx(
        F.cross_entropy(student, labels).item(), rel=1e-5
    )


def test_bce_kd_matches_numpy_elementwise():
    student, teacher = _pair(3, 5)
    temperature = 2.0
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    q = sigmoid(_np(student) / temperature)
    p = sigmoid(_np(teacher) / temperature)
    expected = -(p * np.log(q) + (1 - p) * np.log(1 - q)) * temperature**2
    got = bce_kd_loss(student, teacher, temperature, reduction="none")
    assert got.shape == (3, 5)
    np.testing.assert_allclose(_np(got), expected, rtol=1e-4)
    got_sum = bce_kd_loss(student, teacher, temperature, reduction="sum")
    assert got_sum.item() == pytest.approx(expected.sum(), rel=1e-4)
    assert bce_kd_loss(student, teacher, temperature).item() == pytest.approx(expected.mean(), rel=1e-4)


# -- DKD against a loop over samples that drops the target class instead of masking it
def _dkd_by_loop(s, t, target, alpha, beta, temperature):
    tckd = nckd = 0.0
    for i, y in enumerate(target):
        ps, pt = _np_softmax(s[i] / temperature), _np_softmax(t[i] / temperature)
        bs, bt = np.array([ps[y], 1 - ps[y]]), np.array([pt[y], 1 - pt[y]])
        tckd += _np_kl(bt, bs)
        others = [c for c in range(len(ps)) if c != y]
        ns, nt = _np_softmax(s[i, others] / temperature), _np_softmax(t[i, others] / temperature)
        nckd += _np_kl(nt, ns)
    return (alpha * tckd + beta * nckd) * temperature**2 / len(target)


@pytest.mark.parametrize(
    ("alpha", "beta", "temperature"), [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0), (1.0, 0.0, 2.0)]
)
def test_dkd_matches_a_loop_over_samples(alpha, beta, temperature):
    student, teacher = _pair(6, 5)
    target = torch.tensor([0, 4, 2, 2, 1, 3])
    expected = _dkd_by_loop(_np(student), _np(teacher), target.tolist(), alpha, beta, temperature)
    got = dkd_loss(student, teacher, target, alpha, beta, temperature)
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_dkd_is_zero_when_student_equals_teacher():
    logits, _ = _pair(4, 6)
    assert dkd_loss(logits, logits.clone(), torch.tensor([0, 1, 2, 3])).item() == pytest.approx(0.0, abs=1e-5)


def test_dkd_rejects_targets_of_the_wrong_shape():
    student, teacher = _pair(4, 6)
    with pytest.raises(ValueError, match=r"\(4, 6\).*\(4, 1\)"):
        dkd_loss(student, teacher, torch.zeros(4, 1, dtype=torch.long))


# -- DIST against numpy's Pearson correlation
def _dist_by_numpy(s, t, beta, gamma, temperature):
    p, q = _np_softmax(s / temperature, axis=1), _np_softmax(t / temperature, axis=1)
    inter = np.mean([1 - np.corrcoef(p[i], q[i])[0, 1] for i in range(p.shape[0])])
    intra = np.mean([1 - np.corrcoef(p[:, j], q[:, j])[0, 1] for j in range(p.shape[1])])
    return temperature**2 * (beta * inter + gamma * intra)


@pytest.mark.parametrize(("beta", "gamma", "temperature"), [(1.0, 1.0, 1.0), (2.0, 0.5, 4.0)])
def test_dist_matches_numpy_corrcoef(beta, gamma, temperature):
    student, teacher = _pair(8, 5)
    expected = _dist_by_numpy(_np(student), _np(teacher), beta, gamma, temperature)
    got = dist_loss(student, teacher, beta, gamma, temperature)
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_dist_is_zero_for_identical_predictions():
    logits, _ = _pair(4, 6)
    assert dist_loss(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-5)


# -- cosine and masked BCE
def test_cosine_loss_matches_numpy_in_every_reduction():
    student, teacher = _pair(4, 3)
    s, t = _np(student), _np(teacher)
    expected = 1 - (s * t).sum(1) / (np.linalg.norm(s, axis=1) * np.linalg.norm(t, axis=1))
    np.testing.assert_allclose(_np(cosine_loss(student, teacher, reduction="none")), expected, rtol=1e-5)
    assert cosine_loss(student, teacher, reduction="sum").item() == pytest.approx(expected.sum(), rel=1e-5)
    assert cosine_loss(student, teacher).item() == pytest.approx(expected.mean(), rel=1e-5)


def test_cosine_loss_by_hand():
    student = torch.tensor([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    teacher = torch.tensor([[0.0, 3.0], [-1.0, -1.0], [5.0, 0.0]])
    got = cosine_loss(student, teacher, reduction="none")
    np.testing.assert_allclose(_np(got), [1.0, 2.0, 0.0], atol=1e-6)


def test_masked_bce_averages_over_labelled_entries_only():
    logits = torch.tensor([[0.5, -1.0, 2.0], [0.0, 3.0, -2.0]])
    targets = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 1.0]])
    terms = []
    for x, y in zip(logits.flatten().tolist(), targets.flatten().tolist()):
        if y != -1:
            sig = 1 / (1 + math.exp(-x))
            terms.append(-(y * math.log(sig) + (1 - y) * math.log(1 - sig)))
    got = masked_bce_with_logits(logits, targets)
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_masked_bce_pos_weight_scales_positive_terms():
    logits = torch.tensor([[0.5, -1.0]])
    targets = torch.tensor([[1.0, 1.0]])
    pos_weight = torch.tensor([2.0, 3.0])
    expected = (2.0 * math.log(1 + math.exp(-0.5)) + 3.0 * math.log(1 + math.exp(1.0))) / 2
    got = masked_bce_with_logits(logits, targets, pos_weight=pos_weight)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_masked_bce_with_nothing_labelled_is_zero_with_a_graph():
    logits = torch.randn(2, 3, requires_grad=True)
    loss = masked_bce_with_logits(logits, torch.full((2, 3), -1.0))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(2, 3))


def test_masked_bce_custom_ignore_value():
    logits = torch.tensor([[1.0, 9.0]])
    targets = torch.tensor([[1.0, 255.0]])
    expected = math.log(1 + math.exp(-1.0))
    got = masked_bce_with_logits(logits, targets, ignore_value=255)
    assert got.item() == pytest.approx(expected, rel=1e-5)


# -- checks shared by all the losses
PAIRWISE = {
    "kd": kd_loss,
    "reverse_kl": reverse_kl_loss,
    "jsd": jsd_loss,
    "tvd": tvd_loss,
    "soft_cross_entropy": soft_cross_entropy,
    "bce_kd": bce_kd_loss,
    "dkd": lambda s, t, **kw: dkd_loss(s, t, torch.zeros(s.shape[0], dtype=torch.long), **kw),
    "dist": dist_loss,
    "cosine": cosine_loss,
    "logit_mse": logit_mse_loss,
    "masked_bce": masked_bce_with_logits,
}
WITH_TEMPERATURE = ["kd", "reverse_kl", "jsd", "tvd", "bce_kd", "dkd", "dist"]


@pytest.mark.parametrize("name", PAIRWISE)
def test_mismatched_shapes_raise_naming_both(name):
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(4, 6\)"):
        PAIRWISE[name](torch.randn(4, 5), torch.randn(4, 6))


@pytest.mark.parametrize("name", WITH_TEMPERATURE)
@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_bad_temperature_raises(name, temperature):
    student, teacher = _pair(4, 5)
    with pytest.raises(ValueError, match="temperature"):
        PAIRWISE[name](student, teacher, temperature=temperature)


@pytest.mark.parametrize("name", ["kd", "reverse_kl", "jsd", "tvd", "soft_cross_entropy", "cosine"])
def test_unknown_reduction_raises(name):
    student, teacher = _pair(2, 3)
    with pytest.raises(ValueError, match="reduction"):
        PAIRWISE[name](student, teacher, reduction="average")


@pytest.mark.parametrize("name", PAIRWISE)
def test_gradient_reaches_the_student(name):
    student, teacher = _pair(4, 5)
    if name == "soft_cross_entropy":
        teacher = torch.softmax(teacher, dim=1)
    if name == "masked_bce":
        teacher = (teacher > 0).float()
    student.requires_grad_()
    PAIRWISE[name](student, teacher).backward()
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["kd", "reverse_kl", "jsd", "tvd", "bce_kd", "dkd", "dist"])
def test_half_precision_inputs_give_a_float32_loss(name):
    student, teacher = _pair(4, 5)
    loss = PAIRWISE[name](student.bfloat16(), teacher.bfloat16())
    assert loss.dtype == torch.float32
