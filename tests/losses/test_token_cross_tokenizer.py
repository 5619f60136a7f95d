"""ULD and the exact-match KL across tokenizers: hand-worked numbers, a loop written here, the terms and their errors."""

from __future__ import annotations

import math

import pytest
import torch

from distill.errors import DistillError
from distill.losses import StepOutputs, TokenExactMatchKL, TokenULD
from distill.losses.functional.token_cross_tokenizer import (
    shared_vocabulary_kl,
    sorted_probability_distance,
    token_exact_match_loss,
    token_uld_loss,
)


def test_sorted_distance_hand_worked():
    # student [0.5, 0.3, 0.2], teacher [0.1, 0.6, 0.2, 0.1]: sorted 0.5 0.3 0.2 0 against 0.6 0.2 0.1 0.1
    student = torch.tensor([[0.5, 0.3, 0.2]]).log()
    teacher = torch.tensor([[0.1, 0.6, 0.2, 0.1]]).log()
    expected = 0.1 + 0.1 + 0.1 + 0.1
    assert sorted_probability_distance(student, teacher).item() == pytest.approx(expected, abs=1e-6)
    assert sorted_probability_distance(teacher, student).item() == pytest.approx(expected, abs=1e-6)


def _padded_sorted_l1(student, teacher, temperature):
    """ULD as the paper writes it: zero-pad the shorter probability vector, sort both, L1 (numpy, one row at a time)."""
    out = []
    for s, t in zip(student, teacher):
        p = torch.softmax(s.double() / temperature, -1).numpy()
        q = torch.softmax(t.double() / temperature, -1).numpy()
        size = max(len(p), len(q))
        p = sorted(list(p) + [0.0] * (size - len(p)), reverse=True)
        q = sorted(list(q) + [0.0] * (size - len(q)), reverse=True)
        out.append(sum(abs(a - b) for a, b in zip(p, q)))
    return torch.tensor(out)


@pytest.mark.parametrize("sizes", [(7, 11), (11, 7), (9, 9)])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_sorted_distance_matches_the_padded_definition(sizes, temperature):
    torch.manual_seed(sum(sizes))
    student, teacher = torch.randn(5, sizes[0]) * 2, torch.randn(5, sizes[1]) * 2
    got = sorted_probability_distance(student, teacher, temperature)
    assert torch.allclose(got.double(), _padded_sorted_l1(student, teacher, temperature), atol=1e-6)


def test_sorted_distance_needs_no_token_mapping():
    torch.manual_seed(0)
    teacher = torch.randn(3, 6)
    shuffled = teacher[:, torch.randperm(6)]
    assert torch.allclose(sorted_probability_distance(shuffled, teacher), torch.zeros(3), atol=1e-6)
    # the same distribution padded with tokens of zero probability is still at distance 0
    padded = torch.cat([teacher, torch.full((3, 4), -1e4)], dim=1)
    assert torch.allclose(sorted_probability_distance(padded, teacher), torch.zeros(3), atol=1e-6)


def test_shared_vocabulary_kl_hand_worked():
    # shared: student 0 <-> teacher 2, student 2 <-> teacher 0
    student = torch.tensor([[0.2, 0.5, 0.3]]).log()
    teacher = torch.tensor([[0.1, 0.4, 0.3, 0.2]]).log()
    # teacher restricted to (2, 0): 0.3, 0.1 -> 0.75, 0.25; student restricted to (0, 2): 0.2, 0.3 -> 0.4, 0.6
    expected = 0.75 * math.log(0.75 / 0.4) + 0.25 * math.log(0.25 / 0.6)
    got = shared_vocabulary_kl(student, teacher, torch.tensor([0, 2]), torch.tensor([2, 0]))
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # at temperature T: the restricted softmaxes of logits / T, times T²
    t = 2.0
    p = torch.softmax(teacher[0, [2, 0]] / t, -1)
    q = torch.softmax(student[0, [0, 2]] / t, -1)
    by_hand = t**2 * float((p * (p / q).log()).sum())
    assert shared_vocabulary_kl(student, teacher, torch.tensor([0, 2]), torch.tensor([2, 0]), t).item() == pytest.approx(by_hand, abs=1e-6)


def _batch(seed=0, vs=13, vt=17, ts=6, tt=8):
    torch.manual_seed(seed)
    student = torch.randn(2, ts, vs, requires_grad=True)
    teacher = torch.randn(2, tt, vt)
    alignment = torch.full((2, ts, 3), -1, dtype=torch.long)
    alignment[0, :4] = torch.tensor([[0, 1, 1], [1, 2, 0], [3, 4, 1], [4, 7, 0]])
    alignment[1, :2] = torch.tensor([[1, 0, 1], [2, 3, 1]])
    labels = torch.randint(0, vs, (2, ts))
    labels[0, 2] = -100  # the pair (1, 2) predicts student token 2: no loss there
    return student, teacher, alignment, labels


def _loop(row_loss, student, teacher, alignment, labels, exact_only=False):
    values = []
    for b in range(alignment.shape[0]):
        for s, t, exact in alignment[b].tolist():
            if s < 0 or (exact_only and not exact) or labels[b, s + 1] == -100:
                continue
            values.append(row_loss(student[b, s][None], teacher[b, t][None])[0])
    return torch.stack(values)


def test_uld_loss_is_the_mean_over_the_counted_pairs_and_chunks_change_nothing():
    student, teacher, alignment, labels = _batch()
    expected = _loop(lambda s, t: sorted_probability_distance(s, t, 2.0), student, teacher, alignment, labels)
    assert len(expected) == 5  # 6 pairs, one without loss
    value = token_uld_loss(student, teacher, alignment, labels, temperature=2.0)
    assert value.item() == pytest.approx(expected.mean().item(), abs=1e-6)
    (grad,) = torch.autograd.grad(value, student)
    chunked = token_uld_loss(student, teacher, alignment, labels, temperature=2.0, chunk_size=2)
    (chunked_grad,) = torch.autograd.grad(chunked, student)
    assert chunked.item() == pytest.approx(value.item(), abs=1e-6) and torch.allclose(grad, chunked_grad, atol=1e-6)
    assert grad[0, 1].abs().sum() == 0 and grad[0, 0].abs().sum() > 0  # the unlabelled pair gets no gradient
    none = token_uld_loss(student, teacher, alignment, labels, temperature=2.0, reduction="none")
    assert torch.allclose(none, expected, atol=1e-6)
    # without labels every pair counts
    assert token_uld_loss(student, teacher, alignment, None, reduction="none").shape == (6,)


def test_exact_match_loss_takes_only_the_exact_pairs():
    student, teacher, alignment, labels = _batch()
    s_ids, t_ids = torch.tensor([0, 3, 5, 12]), torch.tensor([16, 2, 5, 0])
    expected = _loop(lambda s, t: shared_vocabulary_kl(s, t, s_ids, t_ids), student, teacher, alignment, labels, True)
    assert len(expected) == 4
    value = token_exact_match_loss(student, teacher, alignment, s_ids, t_ids, labels)
    assert value.item() == pytest.approx(expected.mean().item(), abs=1e-6)
    chunked = token_exact_match_loss(student, teacher, alignment, s_ids, t_ids, labels, chunk_size=1)
    assert chunked.item() == pytest.approx(value.item(), abs=1e-6)


def test_no_counted_pair_gives_zero_with_a_gradient():
    student, teacher, alignment, labels = _batch()
    labels[:] = -100
    value = token_uld_loss(student, teacher, alignment, labels)
    value.backward()
    assert value.item() == 0 and student.grad is not None


def test_terms_read_the_alignment_from_the_step_outputs():
    student, teacher, alignment, labels = _batch()
    outputs = StepOutputs(student=student, teacher=teacher, labels=labels, alignment=alignment)
    uld = TokenULD(temperature=2.0, chunk_size=3)
    assert uld(outputs).item() == pytest.approx(token_uld_loss(student, teacher, alignment, labels, 2.0).item(), abs=1e-6)
    per_sample = uld.per_sample(outputs)
    rows = token_uld_loss(student, teacher, alignment, labels, 2.0, reduction="none")
    assert torch.allclose(per_sample, torch.stack([rows[:3].mean(), rows[3:].mean()]), atol=1e-6)
    exact = TokenExactMatchKL(shared_vocabulary=([0, 3], [1, 2]))
    assert exact(outputs).item() == pytest.approx(
        token_exact_match_loss(student, teacher, alignment, torch.tensor([0, 3]), torch.tensor([1, 2]), labels).item(), abs=1e-6)


def test_term_errors_name_the_missing_piece():
    student, teacher, alignment, labels = _batch()
    with pytest.raises(DistillError, match="alignment.*data.teacher_tokenizer"):
        TokenULD()(StepOutputs(student=student, teacher=teacher, labels=labels))
    with pytest.raises(DistillError, match="no shared vocabulary"):
        TokenExactMatchKL()(StepOutputs(student=student, teacher=teacher, labels=labels, alignment=alignment))
    with pytest.raises(DistillError, match="past the models' vocabularies"):
        TokenExactMatchKL(shared_vocabulary=([0], [99]))(StepOutputs(student=student, teacher=teacher, alignment=alignment))
    with pytest.raises(DistillError, match="non-empty"):
        TokenExactMatchKL(shared_vocabulary=([], []))
    bad = alignment.clone()
    bad[0, 0, 0] = 5  # the last student position predicts nothing
    with pytest.raises(DistillError, match="past the sequences"):
        token_uld_loss(student, teacher, bad)
    with pytest.raises(DistillError, match=r"alignment \[batch, pairs, 3\]"):
        token_uld_loss(student, teacher, alignment[..., :2])
