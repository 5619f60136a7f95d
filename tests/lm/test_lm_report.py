"""The LM fidelity numbers against an independent per-token computation written here."""

from __future__ import annotations

import math

import pytest
import torch

from distill.lm.mask_audit import mask_audit
from distill.report.lm_metrics import POSITION_BUCKETS, per_sequence_losses, summary_line, token_fidelity
from distill.report.lm_report import report_markdown

BINS = 15  # the README's ECE: 15 equal-width confidence bins


class FixedLogits(torch.nn.Module):
    """A 'model' that returns given logits for a batch."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, attention_mask=None):
        return self.logits[: len(input_ids)]


def random_logits_and_labels(seed, B, T, V):
    """A student's and a teacher's logits [B, T, V] and labels [B, T], drawn from ``seed``."""
    torch.manual_seed(seed)
    return torch.randn(B, T, V) * 2, torch.randn(B, T, V) * 2, torch.randint(0, V, (B, T))


def loss_tokens(labels, teacher_logits, student_logits, rows):
    """Each loss-carrying position (b, t) of ``rows``, one at a time: the next token y and both models'
    probabilities there, in float64 (position t predicts token t + 1)."""
    for b in rows:
        for t in range(labels.shape[1] - 1):
            y = int(labels[b, t + 1])
            if y != -100:
                yield b, t, y, torch.softmax(teacher_logits[b, t].double(), 0), torch.softmax(student_logits[b, t].double(), 0)


def test_token_fidelity_matches_a_per_token_loop():
    B, T, V = 3, 40, 7
    student_logits, teacher_logits, labels = random_logits_and_labels(0, B, T, V)
    labels[0, :5] = -100  # a prompt
    labels[2, 30:] = -100  # padding
    batch = {"input_ids": torch.zeros(B, T, dtype=torch.long), "labels": labels}
    rows = token_fidelity({"teacher": FixedLogits(teacher_logits), "student": FixedLogits(student_logits)}, [batch])

    nll = kl = jsd = agree = agree5 = correct = n = 0
    kl_by_bucket = {start: [] for start, _ in POSITION_BUCKETS}
    for _, t, y, p, q in loss_tokens(labels, teacher_logits, student_logits, range(B)):
        m = (p + q) / 2
        n += 1
        nll -= math.log(q[y])
        token_kl = float((p * (p / q).log()).sum())
        kl += token_kl
        jsd += float(0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum())
        agree += int(q.argmax() == p.argmax())
        agree5 += int(p.argmax() in q.topk(5).indices)
        correct += int(q.argmax() == y)
        kl_by_bucket[max(s for s, _ in POSITION_BUCKETS if s <= t)].append(token_kl)
    student = rows["student"]
    assert student["tokens"] == n
    assert student["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-5)
    assert student["kl"] == pytest.approx(kl / n, rel=1e-5)
    assert student["jsd"] == pytest.approx(jsd / n, rel=1e-5)
    assert student["agreement"] == pytest.approx(agree / n)
    assert student["top5_agreement"] == pytest.approx(agree5 / n)
    assert student["accuracy"] == pytest.approx(correct / n)
    for bucket, (start, _) in zip(student["by_position"], [b for b in POSITION_BUCKETS if kl_by_bucket[b[0]]]):
        assert bucket["kl"] == pytest.approx(sum(kl_by_bucket[start]) / len(kl_by_bucket[start]), rel=1e-5)
    assert rows["teacher"]["perplexity"] > 1 and "kl" not in rows["teacher"]
    assert summary_line(rows).startswith(f"the student's perplexity is {student['perplexity']:.1f} vs the teacher's")


def test_calibration_error_of_a_perfectly_confident_right_model():
    V, T = 5, 6
    labels = torch.arange(T)[None] % V
    logits = torch.full((1, T, V), -30.0)
    logits[0, torch.arange(T - 1), labels[0, 1:]] = 30.0  # position t puts all mass on token t+1
    model = FixedLogits(logits)
    rows = token_fidelity({"teacher": model, "student": model}, [{"input_ids": labels, "labels": labels}])
    assert rows["student"]["accuracy"] == 1.0 and rows["student"]["ece"] == pytest.approx(0.0, abs=1e-6)
    assert rows["student"]["kl"] == pytest.approx(0.0, abs=1e-6) and rows["student"]["perplexity"] == pytest.approx(1.0)


def test_calibration_error_is_the_binned_gap_between_confidence_and_accuracy():
    """ECE over 15 bins on a model over-confident where it is sure and under-confident where it is not."""
    torch.manual_seed(1)
    B, T, V = 4, 30, 6
    logits = torch.randn(B, T, V) * torch.linspace(0.2, 4.0, T)[None, :, None]  # confidence rises along the row
    labels = torch.randint(0, V, (B, T))
    low = torch.arange(T - 1) < (T - 1) // 2
    labels[:, 1:][:, low] = logits[:, :-1][:, low].argmax(-1)  # right where unsure: under-confident there
    rows = token_fidelity({"teacher": FixedLogits(logits), "student": FixedLogits(logits)},
                          [{"input_ids": torch.zeros(B, T, dtype=torch.long), "labels": labels}])

    bins = [[] for _ in range(BINS)]  # (confidence, correct) of each token's top-1
    for b in range(B):
        for t in range(T - 1):
            q = torch.softmax(logits[b, t].double(), 0)
            confidence = float(q.max())
            bins[min(int(confidence * BINS), BINS - 1)].append((confidence, float(q.argmax() == labels[b, t + 1])))
    n = sum(len(b) for b in bins)
    ece = sum(len(b) / n * abs(sum(c for c, _ in b) / len(b) - sum(r for _, r in b) / len(b)) for b in bins if b)
    unbinned = abs(sum(c for b in bins for c, _ in b) - sum(r for b in bins for _, r in b)) / n
    assert ece > unbinned + 0.05  # the gaps have both signs: one bin would hide them
    assert rows["student"]["ece"] == pytest.approx(ece, rel=1e-5)
    assert rows["teacher"]["ece"] == pytest.approx(ece, rel=1e-5)


def test_the_report_shows_the_loss_mask_audit_in_its_own_section(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    ids = tokenizer("The for loop")["input_ids"]
    audit = mask_audit(ids, [-100] * 2 + ids[2:], tokenizer)
    report = {"rows": [], "generations": [], "notes": [], "summary": "the line", "mask_audit": audit}
    lines = report_markdown(report).splitlines()
    start = lines.index("Loss-mask audit of the first training example (tokens that carry loss in [...]):")
    assert lines[start + 1: start + 3] == ["", "```text"]
    assert "\n".join(lines[start + 3: start + 3 + len(audit.splitlines())]) == audit
    assert lines[start + 3 + len(audit.splitlines())] == "```"
    assert "Loss-mask audit" not in report_markdown({**report, "mask_audit": None})


def test_per_sequence_losses_match_a_per_token_loop():
    """distill.evaluate's per_sequence.csv: each sequence's loss tokens, mean NLL of both models and mean KL."""
    B, T, V = 3, 9, 5
    student_logits, teacher_logits, labels = random_logits_and_labels(2, B, T, V)
    labels[0, :4] = -100  # a prompt
    labels[2] = -100  # no loss at all
    batch = {"input_ids": torch.zeros(B, T, dtype=torch.long), "labels": labels}
    rows = per_sequence_losses(FixedLogits(student_logits), FixedLogits(teacher_logits), [batch, batch])
    assert [r["sequence"] for r in rows] == list(range(2 * B))
    for b in range(2):
        nll_s, nll_t, kl = [], [], []
        for _, _, y, p, q in loss_tokens(labels, teacher_logits, student_logits, [b]):
            nll_s.append(-math.log(q[y]))
            nll_t.append(-math.log(p[y]))
            kl.append(float((p * (p / q).log()).sum()))
        for row in (rows[b], rows[B + b]):
            assert row["tokens"] == len(kl) > 0
            assert row["student_nll"] == pytest.approx(sum(nll_s) / len(nll_s), rel=1e-5)
            assert row["teacher_nll"] == pytest.approx(sum(nll_t) / len(nll_t), rel=1e-5)
            assert row["kl"] == pytest.approx(sum(kl) / len(kl), rel=1e-5)
    assert rows[2]["tokens"] == 0 and math.isnan(rows[2]["kl"])
