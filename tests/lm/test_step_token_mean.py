"""Gradient accumulation: a DistillationModule step over micro-batches of different token counts is one per-token mean."""

from __future__ import annotations

import functools
import logging

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from distill import DistillationModule
from distill.losses import KD, TokenCrossEntropy, TokenKL

from .conftest import VOCAB, tiny_gpt2

TEMPERATURE = 2.0


def micro_batches():
    g = torch.Generator().manual_seed(3)
    ids = [torch.randint(2, VOCAB, (2, 8), generator=g) for _ in range(2)]
    labels = [i.clone() for i in ids]
    labels[0][:, :6] = -100  # 2 loss tokens per row (tokens 6 and 7), 4 in all
    labels[1][:, :1] = -100  # 7 loss tokens per row, 14 in all
    return [{"input_ids": i, "attention_mask": torch.ones_like(i), "labels": y} for i, y in zip(ids, labels)]


def one_step(loss, accumulate, batches, tmp_path, callbacks=()):
    student, teacher = tiny_gpt2(seed=0), tiny_gpt2(seed=1)
    start = {n: p.detach().clone() for n, p in student.state_dict().items()}
    module = DistillationModule(student, teacher, loss, optimizer=functools.partial(torch.optim.SGD, lr=1.0))
    trainer = L.Trainer(max_steps=1, accumulate_grad_batches=accumulate, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=list(callbacks))
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    return start, student, teacher


def by_hand(start, teacher, batches, kd_weight, ce_weight):
    """One SGD step (lr 1) on the per-token mean of the concatenated micro-batches, written out."""
    reference = tiny_gpt2(seed=0)
    reference.load_state_dict(start)
    ids = torch.cat([b["input_ids"] for b in batches])
    labels = torch.cat([b["labels"] for b in batches])
    targets = labels[:, 1:]
    mask = targets != -100
    s = reference(input_ids=ids).logits[:, :-1][mask]
    with torch.no_grad():
        t = teacher.eval()(input_ids=ids).logits[:, :-1][mask]
    log_p, log_q = F.log_softmax(t / TEMPERATURE, -1), F.log_softmax(s / TEMPERATURE, -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).mean() * TEMPERATURE**2
    loss = kd_weight * kl + ce_weight * F.cross_entropy(s, targets[mask])
    loss.backward()
    return {n: start[n] - p.grad for n, p in reference.named_parameters()}


def test_two_accumulated_micro_batches_step_as_one_per_token_mean(tmp_path):
    batches = micro_batches()
    loss = {"kd": TokenKL(temperature=TEMPERATURE, weight=0.9), "ce": TokenCrossEntropy(weight=0.1)}
    start, student, teacher = one_step(loss, 2, batches, tmp_path)
    expected = by_hand(start, teacher, batches, 0.9, 0.1)
    for name, parameter in student.named_parameters():
        torch.testing.assert_close(parameter.detach(), expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_micro_batch_logs_its_own_per_token_mean(tmp_path):
    seen = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(float(pl_module.step_losses["train/loss/ce"]))

    batches = micro_batches()
    student, _, _ = one_step({"ce": TokenCrossEntropy()}, 2, batches, tmp_path, [Spy()])
    reference = tiny_gpt2(seed=0)
    for batch, value in zip(batches, seen):
        targets = batch["labels"][:, 1:]
        mask = targets != -100
        with torch.no_grad():
            logits = reference(input_ids=batch["input_ids"]).logits[:, :-1][mask]
        assert value == pytest.approx(float(F.cross_entropy(logits, targets[mask])), rel=1e-5)


def test_terms_that_are_no_token_means_keep_each_micro_batchs_mean_and_say_so(tmp_path, caplog):
    batches = micro_batches()
    with caplog.at_level(logging.INFO, logger="distill"):
        one_step({"ce": TokenCrossEntropy(), "kd": KD()}, 2, batches, tmp_path)
    assert "no per-token means (kd): each micro-batch keeps its own mean" in caplog.text
