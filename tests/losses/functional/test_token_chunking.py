"""Chunked token losses equal the unchunked computation, in value and gradient, and stay within their chunks."""

import functools

import pytest
import torch
import torch.nn.functional as F

from distill.losses.functional import (
    token_cross_entropy,
    token_jsd_loss,
    token_kl_loss,
    token_reverse_kl_loss,
    token_skew_kl_loss,
    token_tvd_loss,
)
from distill.losses.functional.token_chunking import chunked_row_sum

IGNORE = -100

LOSSES = {
    "kl": functools.partial(token_kl_loss, temperature=2.0),
    "reverse_kl": token_reverse_kl_loss,
    "jsd": functools.partial(token_jsd_loss, beta=0.3),
    "jsd_forward_end": functools.partial(token_jsd_loss, beta=0.0),
    "tvd": token_tvd_loss,
    "skew_kl": functools.partial(token_skew_kl_loss, alpha=0.1),
    "kl_top5": functools.partial(token_kl_loss, top_k=5),
    "jsd_top3": functools.partial(token_jsd_loss, beta=0.5, top_k=3),
    "ce": lambda s, t, y, **options: token_cross_entropy(s, y, **options),
}


def _batch(seed=0, batch=3, length=9, vocab=17):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, length, vocab, generator=g)
    teacher = torch.randn(batch, length, vocab, generator=g)
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    labels[0, :4] = IGNORE
    labels[2, -3:] = IGNORE
    return student, teacher, labels


def _value_and_grad(loss, student, teacher, labels, chunk_size):
    student = student.clone().requires_grad_(True)
    value = loss(student, teacher, labels, chunk_size=chunk_size)
    (grad,) = torch.autograd.grad(value, student)
    return value.detach(), grad


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_chunked_equals_unchunked_in_value_and_gradient(name):
    loss = LOSSES[name]
    s, t, y = _batch()
    tokens = int((y[:, 1:] != IGNORE).sum())  # 17 here: no chunk size below divides it
    reference_value, reference_grad = _value_and_grad(loss, s, t, y, None)
    for chunk_size in (1, 4, 5, tokens - 1, tokens, 1000):
        value, grad = _value_and_grad(loss, s, t, y, chunk_size)
        torch.testing.assert_close(value, reference_value, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(grad, reference_grad, rtol=1e-5, atol=1e-7)


def test_the_gradient_matches_plain_autograd_of_the_formula():
    s, t, y = _batch(1)
    s = s.requires_grad_(True)
    mask = y[:, 1:] != IGNORE
    log_p = F.log_softmax(t[:, :-1][mask], -1)
    plain = (log_p.exp() * (log_p - F.log_softmax(s[:, :-1][mask], -1))).sum(-1).mean()
    (expected,) = torch.autograd.grad(plain, s)
    (chunked,) = torch.autograd.grad(token_kl_loss(s, t, y, chunk_size=3), s)
    torch.testing.assert_close(chunked, expected)


def test_no_more_than_chunk_size_rows_reach_the_softmax(monkeypatch):
    s, t, y = _batch(2)
    s.requires_grad_(True)
    widest = []
    log_softmax = F.log_softmax

    def spy(x, *args, **kwargs):
        widest.append(x.reshape(-1, x.shape[-1]).shape[0])
        return log_softmax(x, *args, **kwargs)

    monkeypatch.setattr(F, "log_softmax", spy)
    token_kl_loss(s, t, y, chunk_size=4).backward()
    assert widest and max(widest) <= 4
    widest.clear()
    token_kl_loss(s, t, y).backward()
    assert max(widest) == int((y[:, 1:] != IGNORE).sum())


def test_chunked_values_without_gradients_and_under_no_grad():
    s, t, y = _batch(3)
    expected = token_kl_loss(s, t, y)
    with torch.no_grad():
        assert token_kl_loss(s.requires_grad_(True), t, y, chunk_size=2).item() == pytest.approx(expected.item())
    assert token_kl_loss(s.detach(), t, y, chunk_size=2).item() == pytest.approx(expected.item())


def test_bf16_student_gets_a_bf16_gradient_close_to_float32():
    s, t, y = _batch(4)
    half = s.bfloat16().requires_grad_(True)
    token_kl_loss(half, t, y, chunk_size=3).backward()
    assert half.grad.dtype == torch.bfloat16
    full = half.detach().float().requires_grad_(True)
    token_kl_loss(full, t, y).backward()
    torch.testing.assert_close(half.grad.float(), full.grad, rtol=2e-2, atol=1e-3)


def test_the_backward_pass_can_run_twice_and_scales_with_the_upstream_gradient():
    s, t, y = _batch(5)
    s.requires_grad_(True)
    value = token_kl_loss(s, t, y, chunk_size=4)
    (once,) = torch.autograd.grad(value, s, retain_graph=True)
    (tripled,) = torch.autograd.grad(3.0 * value, s)
    torch.testing.assert_close(tripled, 3.0 * once)


def test_the_teacher_gets_no_gradient():
    s, t, y = _batch(6)
    s.requires_grad_(True)
    t.requires_grad_(True)
    token_kl_loss(s, t, y, chunk_size=4).backward()
    assert t.grad is None and s.grad is not None


def test_chunked_row_sum_adds_up_an_arbitrary_row_loss():
    student = torch.randn(10, 3, requires_grad=True)
    rows = torch.tensor([0, 2, 3, 7, 9])
    targets = torch.zeros(5, dtype=torch.long)

    def row_loss(student_rows, teacher_rows, targets):
        return (student_rows**2).sum(-1)

    value = chunked_row_sum(row_loss, student, (), rows, targets, chunk_size=2)
    assert value.item() == pytest.approx(float((student.detach()[rows] ** 2).sum()), rel=1e-6)
    value.backward()
    expected = torch.zeros(10, 3)
    expected[rows] = 2 * student.detach()[rows]
    torch.testing.assert_close(student.grad, expected)


@pytest.mark.parametrize("name", ["kl", "kl_top5", "ce"])
def test_chunked_equals_unchunked_under_bf16_autocast(name):
    loss = LOSSES[name]
    s, t, y = _batch(7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference_value, reference_grad = _value_and_grad(loss, s, t, y, None)
        value, grad = _value_and_grad(loss, s, t, y, 4)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-4, atol=1e-6)


def test_the_chunked_graph_keeps_no_float32_softmax_for_backward():
    """Unchunked autograd saves [N, V] float32 tensors for backward; chunked, only one chunk's, freed after it."""
    s, t, y = _batch(8)
    s = s.bfloat16().requires_grad_(True)
    tokens, vocab = int((y[:, 1:] != IGNORE).sum()), s.shape[-1]

    def saved_float32_rows(chunk_size):
        saved = []

        def pack(tensor):
            if tensor.dtype == torch.float32 and tensor.dim() == 2 and tensor.shape[-1] == vocab:
                saved.append(tensor.shape[0])
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            token_kl_loss(s, t, y, chunk_size=chunk_size)
        return saved

    assert tokens in saved_float32_rows(None)
    assert max(saved_float32_rows(4)) == 4
