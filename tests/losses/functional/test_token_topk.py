"""Sparse top-k token losses: the teacher's top k plus the exact tail mass."""

import functools

import pytest
import torch
import torch.nn.functional as F

from distill.losses.functional import (
    TeacherTopK,
    teacher_topk,
    token_jsd_loss,
    token_kl_loss,
    token_reverse_kl_loss,
    token_skew_kl_loss,
    token_tvd_loss,
    topk_buckets,
)

IGNORE = -100
VOCAB = 23

DIVERGENCES = {
    "kl": functools.partial(token_kl_loss, temperature=2.0),
    "reverse_kl": token_reverse_kl_loss,
    "jsd": functools.partial(token_jsd_loss, beta=0.5),
    "jsd_reverse_end": functools.partial(token_jsd_loss, beta=1.0),
    "tvd": token_tvd_loss,
    "skew_kl": functools.partial(token_skew_kl_loss, alpha=0.1),
    "skew_reverse_kl": functools.partial(token_skew_kl_loss, alpha=0.1, reverse=True),
}


def _batch(seed=0, batch=2, length=8, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, length, VOCAB, generator=g) * scale
    teacher = torch.randn(batch, length, VOCAB, generator=g) * scale
    labels = torch.randint(0, VOCAB, (batch, length), generator=g)
    labels[0, :3] = IGNORE
    return student, teacher, labels


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_top_k_equal_to_the_vocabulary_is_the_dense_loss(name):
    loss = DIVERGENCES[name]
    s, t, y = _batch()
    dense_s = s.clone().requires_grad_(True)
    sparse_s = s.clone().requires_grad_(True)
    dense = loss(dense_s, t, y)
    sparse = loss(sparse_s, t, y, top_k=VOCAB, chunk_size=5)
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)
    dense.backward()
    sparse.backward()
    assert torch.isfinite(sparse_s.grad).all()
    torch.testing.assert_close(sparse_s.grad, dense_s.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_top_k_is_a_lower_bound_of_the_dense_divergence(name):
    loss = DIVERGENCES[name]
    for seed in range(4):
        s, t, y = _batch(seed, batch=4, scale=1.0 + 2 * seed)
        dense = loss(s, t, y, reduction="none")
        for k in (1, 2, 7, VOCAB - 1):
            sparse = loss(s, t, y, top_k=k, reduction="none")
            assert (sparse <= dense * (1 + 1e-5) + 1e-6).all(), (seed, k)


def test_forward_kl_lower_bound_tightens_as_k_grows():
    s, t, y = _batch(3)
    values = [token_kl_loss(s, t, y, top_k=k).item() for k in (1, 4, 12, VOCAB)]
    assert values == sorted(values)
    assert values[0] < values[-1]


def test_buckets_by_hand():
    """Three tokens, teacher top 1: buckets are [p_top, 1 - p_top] and [q at that id, 1 - q at that id]."""
    teacher = torch.tensor([[2.0, 0.0, -1.0]])
    student = torch.tensor([[0.0, 1.0, 0.5]])
    top = teacher_topk(teacher, 1)
    assert top.ids.tolist() == [[0]]
    p = torch.softmax(teacher, -1)[0]
    q = torch.softmax(student, -1)[0]
    torch.testing.assert_close(top.log_probs.exp(), p[:1].reshape(1, 1))
    torch.testing.assert_close(top.tail_log_mass.exp(), (p[1] + p[2]).reshape(1))
    log_p, log_q = topk_buckets(student, top.ids, top.log_probs, top.tail_log_mass)
    torch.testing.assert_close(log_p.exp(), torch.stack([p[0], p[1] + p[2]]).reshape(1, 2))
    torch.testing.assert_close(log_q.exp(), torch.stack([q[0], q[1] + q[2]]).reshape(1, 2))


def test_the_tail_from_log_probs_alone_matches_the_exact_tail():
    _, t, _ = _batch(4)
    top = teacher_topk(t, 5, temperature=1.5)
    _, from_probs_only = topk_buckets(t, top.ids, top.log_probs, None, temperature=1.5)
    log_p_given, _ = topk_buckets(t, top.ids, top.log_probs, top.tail_log_mass, temperature=1.5)
    log_p_computed, _ = topk_buckets(t, top.ids, top.log_probs, None, temperature=1.5)
    torch.testing.assert_close(log_p_computed, log_p_given, rtol=1e-5, atol=1e-6)
    dense = F.softmax(t / 1.5, -1)
    expected_tail = dense.sum(-1) - dense.topk(5, dim=-1).values.sum(-1)
    torch.testing.assert_close(top.tail_log_mass.exp(), expected_tail, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_a_cached_teacher_gives_the_online_top_k_loss(temperature):
    """What an offline cache stores (ids, log-probs, optionally the tail) gives the same loss as top-k online."""
    s, t, y = _batch(5)
    online = token_jsd_loss(s, t, y, beta=0.3, temperature=temperature, top_k=6)
    top = teacher_topk(t, 6, temperature)
    for cached in (top, TeacherTopK(top.ids, top.log_probs)):
        value = token_jsd_loss(s, cached, y, beta=0.3, temperature=temperature, chunk_size=4)
        torch.testing.assert_close(value, online, rtol=1e-5, atol=1e-6)


def test_reference_two_bucket_forward_kl_by_explicit_loop():
    s, t, y = _batch(6)
    k = 3
    total, count = 0.0, 0
    for b in range(y.shape[0]):
        for i in range(y.shape[1] - 1):
            if y[b, i + 1] == IGNORE:
                continue
            p = torch.softmax(t[b, i].double(), -1)
            q = torch.softmax(s[b, i].double(), -1)
            ids = p.argsort(descending=True)[:k]
            p_b = torch.cat([p[ids], (1 - p[ids].sum()).reshape(1)])
            q_b = torch.cat([q[ids], (1 - q[ids].sum()).reshape(1)])
            total += float((p_b * (p_b / q_b).log()).sum())
            count += 1
    assert token_kl_loss(s, t, y, top_k=k).item() == pytest.approx(total / count, rel=1e-4)
