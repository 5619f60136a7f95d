"""How faithful a student LM is to its teacher on held-out text, teacher-forced.

For each model: perplexity (exp of the mean next-token NLL), token top-1
accuracy, next-token calibration error (ECE, 15 equal-width bins over the
top-1 probability); against the teacher: top-1 agreement, top-5 agreement (the
teacher's top-1 token is among the student's 5 most likely), forward
KL(teacher || student) and JSD(β = 0.5) per token, overall and by position
bucket. Every number is a mean over loss-carrying tokens only (the shift and
mask of :mod:`distill.lm.tokens`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.batch import forward_logits, split_batch
from distill.lm.tokens import next_token_targets, shift_logits

#: position buckets [start, stop) of the predicting position
POSITION_BUCKETS = ((0, 8), (8, 32), (32, 128), (128, 10**9))
CALIBRATION_BINS = 15


class _Sums:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def add(self, key: str, value: float) -> None:
        self.values[key] = self.values.get(key, 0.0) + float(value)

    def get(self, key: str) -> float:
        return self.values.get(key, 0.0)


def _kl_and_jsd(student_logp: Tensor, teacher_logp: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token KL(teacher || student) and JSD(0.5) in nats (rows of log-probabilities)."""
    kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)
    mixture = torch.logsumexp(torch.stack([student_logp, teacher_logp]), 0) - math.log(2)
    jsd = 0.5 * (teacher_logp.exp() * (teacher_logp - mixture)).sum(-1) + 0.5 * (student_logp.exp() * (student_logp - mixture)).sum(-1)
    return kl, jsd


@torch.no_grad()
def token_fidelity(models: Mapping[str, nn.Module], batches: Iterable[Any], teacher: str = "teacher") -> dict[str, dict[str, Any]]:
    """Teacher-forced metrics of each model of ``models`` (role → model) on ``batches`` (with ``labels``)."""
    for model in models.values():
        model.eval()
    sums = {role: _Sums() for role in models}
    bins = {role: torch.zeros(3, CALIBRATION_BINS, dtype=torch.float64) for role in models}  # count, confidence, correct
    for batch in batches:
        parts = split_batch(batch)
        targets, mask = next_token_targets(parts.labels)
        positions = torch.arange(targets.shape[1]).expand_as(targets)[mask]
        logps = {role: F.log_softmax(shift_logits(forward_logits(model, parts))[mask].float(), -1) for role, model in models.items()}
        size = min(lp.shape[-1] for lp in logps.values())
        logps = {role: lp[:, :size] if lp.shape[-1] == size else F.log_softmax(lp[:, :size], -1) for role, lp in logps.items()}
        truth = targets[mask]
        reference = logps[teacher]
        teacher_top1 = reference.argmax(-1)
        for role, logp in logps.items():
            s = sums[role]
            s.add("tokens", len(truth))
            s.add("nll", -logp.gather(1, truth[:, None]).sum())
            confidence, top1 = logp.exp().max(-1)
            correct = (top1 == truth).double()
            s.add("correct", correct.sum())
            index = (confidence.double() * CALIBRATION_BINS).long().clamp(max=CALIBRATION_BINS - 1)
            for row, values in enumerate((torch.ones_like(correct), confidence.double(), correct)):
                bins[role][row].index_add_(0, index, values)
            if role == teacher:
                continue
            s.add("agree1", (top1 == teacher_top1).sum())
            s.add("agree5", (logp.topk(min(5, size), -1).indices == teacher_top1[:, None]).any(-1).sum())
            kl, jsd = _kl_and_jsd(logp, reference)
            s.add("kl", kl.sum())
            s.add("jsd", jsd.sum())
            for start, stop in POSITION_BUCKETS:
                inside = (positions >= start) & (positions < stop)
                s.add(f"n{start}", inside.sum())
                s.add(f"kl{start}", kl[inside].sum())
                s.add(f"jsd{start}", jsd[inside].sum())
    return {role: _finish(sums[role], bins[role], role == teacher) for role in models}


def _finish(s: _Sums, bins: Tensor, is_teacher: bool) -> dict[str, Any]:
    n = max(s.get("tokens"), 1.0)
    count, confidence, correct = bins
    ece = float((confidence - correct).abs().sum() / max(float(count.sum()), 1.0))
    row: dict[str, Any] = {"tokens": int(s.get("tokens")), "perplexity": math.exp(s.get("nll") / n),
                           "nll": s.get("nll") / n, "accuracy": s.get("correct") / n, "ece": ece}
    if is_teacher:
        return row
    row.update(agreement=s.get("agree1") / n, top5_agreement=s.get("agree5") / n, kl=s.get("kl") / n, jsd=s.get("jsd") / n)
    row["by_position"] = [
        {"positions": f"{start}-{stop - 1}" if stop < 10**9 else f"{start}+", "tokens": int(s.get(f"n{start}")),
         "kl": s.get(f"kl{start}") / s.get(f"n{start}"), "jsd": s.get(f"jsd{start}") / s.get(f"n{start}")}
        for start, stop in POSITION_BUCKETS if s.get(f"n{start}")
    ]
    return row


@torch.no_grad()
def tokens_per_second(model: nn.Module, block_size: int, vocab: int, batch_size: int, repeats: int = 3) -> float:
    """Forward-pass throughput on random tokens: ``batch_size × block_size`` tokens per call, best of ``repeats``."""
    model.eval()
    ids = torch.randint(0, vocab, (batch_size, block_size))
    model(input_ids=ids)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model(input_ids=ids)
        best = min(best, time.perf_counter() - start)
    return batch_size * block_size / best


@torch.no_grad()
def greedy_generations(models: Mapping[str, nn.Module], tokenizer: Any, prompts: Sequence[Sequence[int]],
                       new_tokens: int = 24) -> list[dict[str, str]]:
    """Each prompt (token ids) continued greedily by each model, decoded."""
    rows = []
    for prompt in prompts:
        ids = torch.tensor([list(prompt)])
        row = {"prompt": tokenizer.decode(list(prompt))}
        for role, model in models.items():
            model.eval()
            limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
            steps = min(new_tokens, limit - ids.shape[1]) if limit else new_tokens
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max(steps, 1),
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
            row[role] = tokenizer.decode(out[0, ids.shape[1]:].tolist())
        rows.append(row)
    return rows


def summary_line(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """One line: what the student kept (and how the baseline compares, when there is one)."""
    teacher, student = rows["teacher"], rows["student"]
    line = (f"the student's perplexity is {student['perplexity']:.1f} vs the teacher's {teacher['perplexity']:.1f}, "
            f"agreement {100 * student['agreement']:.1f} %, KL to the teacher {student['kl']:.3f} nats/token")
    if "baseline" in rows:
        base = rows["baseline"]
        line += (f"; the student trained alone: perplexity {base['perplexity']:.1f}, agreement "
                 f"{100 * base['agreement']:.1f} %, KL {base['kl']:.3f}")
    return line


@torch.no_grad()
def per_sequence_losses(student: nn.Module, teacher: nn.Module, batches: Iterable[Any]) -> list[dict[str, float]]:
    """For each sequence: its loss-carrying tokens, the student's and the teacher's mean NLL, the mean KL(teacher || student)."""
    student.eval(), teacher.eval()
    rows = []
    for batch in batches:
        parts = split_batch(batch)
        targets, mask = next_token_targets(parts.labels)
        s = F.log_softmax(shift_logits(forward_logits(student, parts)).float(), -1)
        t = F.log_softmax(shift_logits(forward_logits(teacher, parts)).float(), -1)
        size = min(s.shape[-1], t.shape[-1])
        s, t = F.log_softmax(s[..., :size], -1), F.log_softmax(t[..., :size], -1)
        safe = targets.clamp(min=0)[..., None]
        nll_s, nll_t = -s.gather(-1, safe)[..., 0], -t.gather(-1, safe)[..., 0]
        kl = (t.exp() * (t - s)).sum(-1)
        for b in range(len(targets)):
            n = int(mask[b].sum())
            rows.append({"sequence": len(rows), "tokens": n,
                         "student_nll": float(nll_s[b][mask[b]].mean()) if n else float("nan"),
                         "teacher_nll": float(nll_t[b][mask[b]].mean()) if n else float("nan"),
                         "kl": float(kl[b][mask[b]].mean()) if n else float("nan")})
    return rows
