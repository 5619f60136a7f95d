"""Token-level LM losses against independent implementations written here (plain torch, explicit loops)."""

import math

import pytest
import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.losses import (
    StepOutputs,
    TokenCrossEntropy,
    TokenJSD,
    TokenKL,
    TokenReverseKL,
    TokenSkewKL,
    TokenTVD,
)
from distill.losses.functional import (
    token_cross_entropy,
    token_jsd_loss,
    token_kl_loss,
    token_reverse_kl_loss,
    token_skew_kl_loss,
    token_tvd_loss,
)

IGNORE = -100


def _batch(seed=0, batch=3, length=7, vocab=13):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, length, vocab, generator=g) * 2
    teacher = torch.randn(batch, length, vocab, generator=g) * 2
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    labels[0, :3] = IGNORE  # a prompt
    labels[1, -2:] = IGNORE  # right padding
    labels[2, :1] = IGNORE
    labels[2, 4] = IGNORE  # a packed document boundary
    return student, teacher, labels


def _pairs(labels):
    """(b, t) of every logit position whose next token carries loss, by an explicit loop."""
    return [
        (b, t)
        for b in range(labels.shape[0])
        for t in range(labels.shape[1] - 1)
        if labels[b, t + 1].item() != IGNORE
    ]


def _mean_over_pairs(per_position, labels):
    pairs = _pairs(labels)
    return sum(per_position(b, t) for b, t in pairs) / len(pairs)


def _probs(logits, temperature):
    return torch.softmax(logits.double() / temperature, dim=-1)


def _kl(a, b):
    return float((a * (a.log() - b.log())).sum())


# -- plain formulas, one per loss --------------------------------------------------------
def reference_forward_kl(s, t, labels, temperature=1.0):
    return temperature**2 * _mean_over_pairs(
        lambda b, i: _kl(_probs(t[b, i], temperature), _probs(s[b, i], temperature)), labels
    )


def reference_reverse_kl(s, t, labels, temperature=1.0):
    return temperature**2 * _mean_over_pairs(
        lambda b, i: _kl(_probs(s[b, i], temperature), _probs(t[b, i], temperature)), labels
    )


def reference_jsd(s, t, labels, beta, temperature=1.0):
    def one(b, i):
        p, q = _probs(t[b, i], temperature), _probs(s[b, i], temperature)
        m = beta * p + (1 - beta) * q
        return beta * _kl(p, m) + (1 - beta) * _kl(q, m)

    return temperature**2 * _mean_over_pairs(one, labels)


def reference_tvd(s, t, labels, temperature=1.0):
    return _mean_over_pairs(
        lambda b, i: 0.5 * float((_probs(t[b, i], temperature) - _probs(s[b, i], temperature)).abs().sum()), labels
    )


def reference_skew_kl(s, t, labels, alpha, temperature=1.0, reverse=False):
    def one(b, i):
        p, q = _probs(t[b, i], temperature), _probs(s[b, i], temperature)
        if reverse:
            return _kl(q, (1 - alpha) * p + alpha * q)
        return _kl(p, alpha * p + (1 - alpha) * q)

    return temperature**2 * _mean_over_pairs(one, labels)


def reference_cross_entropy(s, labels):
    return _mean_over_pairs(lambda b, i: -float(torch.log_softmax(s[b, i].double(), -1)[labels[b, i + 1]]), labels)


def trl_generalized_jsd(student_logits, teacher_logits, labels, beta, temperature=1.0):
    """TRL's GKDTrainer definition (Eq. 1 of the GKD paper with its β = 0 / β = 1 ends), written from its math.

    TRL receives logits and labels already shifted: logits[:, :-1] with labels[:, 1:].
    ``F.kl_div(input, target, log_target=True)`` is KL(target || input).
    """
    s = F.log_softmax(student_logits[:, :-1] / temperature, dim=-1)
    t = F.log_softmax(teacher_logits[:, :-1] / temperature, dim=-1)
    if beta == 0:
        per = F.kl_div(s, t, reduction="none", log_target=True)
    elif beta == 1:
        per = F.kl_div(t, s, reduction="none", log_target=True)
    else:
        m = torch.logsumexp(torch.stack([s + math.log(1 - beta), t + math.log(beta)]), dim=0)
        per = beta * F.kl_div(m, t, reduction="none", log_target=True) + (1 - beta) * F.kl_div(
            m, s, reduction="none", log_target=True
        )
    mask = labels[:, 1:] != IGNORE
    return per[mask].sum() / mask.sum()


# -- the functions ---------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_forward_and_reverse_kl(temperature):
    s, t, y = _batch()
    assert token_kl_loss(s, t, y, temperature).item() == pytest.approx(reference_forward_kl(s, t, y, temperature), rel=1e-5)
    assert token_reverse_kl_loss(s, t, y, temperature).item() == pytest.approx(
        reference_reverse_kl(s, t, y, temperature), rel=1e-5
    )


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_generalized_jsd_between_the_ends(beta, temperature):
    s, t, y = _batch(1)
    assert token_jsd_loss(s, t, y, beta, temperature).item() == pytest.approx(
        reference_jsd(s, t, y, beta, temperature), rel=1e-5
    )


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_generalized_jsd_is_trls_definition(beta):
    s, t, y = _batch(2)
    expected = trl_generalized_jsd(s, t, y, beta)
    assert token_jsd_loss(s, t, y, beta).item() == pytest.approx(expected.item(), rel=1e-5)


def test_jsd_ends_are_forward_and_reverse_kl():
    s, t, y = _batch(3)
    assert token_jsd_loss(s, t, y, 0.0).item() == pytest.approx(reference_forward_kl(s, t, y), rel=1e-5)
    assert token_jsd_loss(s, t, y, 1.0).item() == pytest.approx(reference_reverse_kl(s, t, y), rel=1e-5)


def test_trl_differs_from_ours_at_a_temperature_only_by_t_squared():
    s, t, y = _batch(4)
    ours = token_jsd_loss(s, t, y, 0.5, temperature=2.0)
    assert ours.item() == pytest.approx(4.0 * trl_generalized_jsd(s, t, y, 0.5, temperature=2.0).item(), rel=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_tvd_has_no_t_squared(temperature):
    s, t, y = _batch(5)
    assert token_tvd_loss(s, t, y, temperature).item() == pytest.approx(reference_tvd(s, t, y, temperature), rel=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.6])
@pytest.mark.parametrize("reverse", [False, True])
def test_skew_kl(alpha, reverse):
    s, t, y = _batch(6)
    value = token_skew_kl_loss(s, t, y, alpha, temperature=1.5, reverse=reverse)
    assert value.item() == pytest.approx(reference_skew_kl(s, t, y, alpha, 1.5, reverse), rel=1e-5)


def test_skew_kl_at_alpha_zero_is_forward_kl():
    s, t, y = _batch(7)
    assert token_skew_kl_loss(s, t, y, 0.0).item() == pytest.approx(token_kl_loss(s, t, y).item(), rel=1e-6)


def test_cross_entropy_on_the_datas_tokens():
    s, _, y = _batch(8)
    assert token_cross_entropy(s, y).item() == pytest.approx(reference_cross_entropy(s, y), rel=1e-5)
    # the same as torch's own shifted cross-entropy with ignore_index
    torch_ce = F.cross_entropy(s[:, :-1].reshape(-1, s.shape[-1]), y[:, 1:].reshape(-1), ignore_index=IGNORE)
    assert token_cross_entropy(s, y).item() == pytest.approx(torch_ce.item(), rel=1e-6)


def test_identical_models_give_zero_divergence():
    s, _, y = _batch(9)
    for fn in (token_kl_loss, token_reverse_kl_loss, token_tvd_loss):
        assert fn(s, s.clone(), y).item() == pytest.approx(0.0, abs=1e-6)
    assert token_jsd_loss(s, s.clone(), y, 0.5).item() == pytest.approx(0.0, abs=1e-6)


def test_positions_without_loss_do_not_count():
    s, t, y = _batch(10)
    changed_s, changed_t = s.clone(), t.clone()
    ignored = (y[:, 1:] == IGNORE).nonzero().tolist()
    for b, i in ignored:  # change every logit whose next token carries no loss, and the last position
        changed_s[b, i] += 10 * torch.randn(s.shape[-1])
        changed_t[b, i] -= 10 * torch.randn(s.shape[-1])
    changed_s[:, -1] = 0
    assert token_kl_loss(changed_s, changed_t, y).item() == pytest.approx(token_kl_loss(s, t, y).item(), rel=1e-6)


def test_reduction_none_and_sum():
    s, t, y = _batch(11)
    per_position = token_kl_loss(s, t, y, reduction="none")
    assert per_position.shape == (3, 6)
    mask = y[:, 1:] != IGNORE
    assert (per_position[~mask] == 0).all()
    b, i = _pairs(y)[0]
    assert per_position[b, i].item() == pytest.approx(_kl(_probs(t[b, i], 1), _probs(s[b, i], 1)), rel=1e-5)
    assert token_kl_loss(s, t, y, reduction="sum").item() == pytest.approx(per_position.sum().item(), rel=1e-6)


def test_a_batch_without_loss_tokens_gives_zero_attached_to_the_graph():
    s, t, _ = _batch(12)
    s.requires_grad_(True)
    y = torch.full(s.shape[:2], IGNORE)
    value = token_kl_loss(s, t, y, chunk_size=4)
    assert value.item() == 0.0
    value.backward()
    assert s.grad is not None and (s.grad == 0).all()


def test_bf16_logits_are_computed_in_float32():
    s, t, y = _batch(13)
    value = token_kl_loss(s.bfloat16(), t.bfloat16(), y)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference_forward_kl(s.bfloat16().float(), t.bfloat16().float(), y), rel=1e-4)


# -- the terms --------------------------------------------------------------------------
TERMS = [
    (TokenKL(temperature=2.0), lambda s, t, y: reference_forward_kl(s, t, y, 2.0)),
    (TokenReverseKL(temperature=1.5, chunk_size=3), lambda s, t, y: reference_reverse_kl(s, t, y, 1.5)),
    (TokenJSD(beta=0.3, chunk_size=5), lambda s, t, y: reference_jsd(s, t, y, 0.3)),
    (TokenJSD(beta=0.0), reference_forward_kl),
    (TokenTVD(chunk_size=2), reference_tvd),
    (TokenSkewKL(alpha=0.2), lambda s, t, y: reference_skew_kl(s, t, y, 0.2)),
    (TokenSkewKL(alpha=0.2, reverse=True, temperature=2.0), lambda s, t, y: reference_skew_kl(s, t, y, 0.2, 2.0, True)),
    (TokenCrossEntropy(chunk_size=4), lambda s, t, y: reference_cross_entropy(s, y)),
]


@pytest.mark.parametrize("term, reference", TERMS, ids=[repr(term) for term, _ in TERMS])
def test_terms_compute_their_loss(term, reference):
    s, t, y = _batch(14)
    outputs = StepOutputs(student=s, teacher=t, labels=y)
    assert term(outputs).item() == pytest.approx(reference(s, t, y), rel=1e-5)


@pytest.mark.parametrize("term, reference", TERMS[:2] + TERMS[-1:], ids=["kl", "reverse_kl", "ce"])
def test_per_sample_is_each_sequences_mean(term, reference):
    s, t, y = _batch(15)
    per_sample = term.per_sample(StepOutputs(student=s, teacher=t, labels=y))
    assert per_sample.shape == (3,)
    for b in range(3):
        expected = reference(s[b : b + 1], t[b : b + 1], y[b : b + 1])
        assert per_sample[b].item() == pytest.approx(expected, rel=1e-5)


def test_term_flags():
    assert TokenKL.needs_labels and TokenKL.needs_teacher and TokenKL.compares_outputs
    assert TokenCrossEntropy.needs_labels and not TokenCrossEntropy.needs_teacher


def test_term_uses_the_step_outputs_token_normalizer():
    s, t, y = _batch(16)
    outputs = StepOutputs(student=s, teacher=t, labels=y)
    local = TokenKL()(outputs)
    total, count = TokenKL().loss_sum(outputs)
    assert local.item() == pytest.approx((total / count).item(), rel=1e-6)
    outputs.token_normalizer = 40.0
    assert TokenKL()(outputs).item() == pytest.approx(total.item() / 40.0, rel=1e-6)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: TokenKL(temperature=0), "temperature"),
        (lambda: TokenKL(chunk_size=0), "chunk_size"),
        (lambda: TokenKL(top_k=0), "top_k"),
        (lambda: TokenJSD(beta=1.5), "beta"),
        (lambda: TokenSkewKL(alpha=1.0), "alpha"),
        (lambda: TokenKL(weight=-1), "weight"),
    ],
)
def test_bad_settings_get_a_one_line_error(build, message):
    with pytest.raises(DistillError, match=message):
        build()


def test_mismatched_shapes_get_a_one_line_error():
    s, t, y = _batch(17)
    with pytest.raises(DistillError, match="vocabulary"):
        TokenKL()(StepOutputs(student=s, teacher=t[..., :-1], labels=y))
    with pytest.raises(DistillError, match="labels"):
        TokenKL()(StepOutputs(student=s, teacher=t, labels=y[:, :-1]))
    with pytest.raises(DistillError, match="labels"):
        TokenKL()(StepOutputs(student=s[:, 0], teacher=t[:, 0], labels=y))
    with pytest.raises(DistillError, match="top_k"):
        TokenKL(top_k=99)(StepOutputs(student=s, teacher=t, labels=y))
    with pytest.raises(DistillError, match="teacher"):
        TokenKL()(StepOutputs(student=s, labels=y))
