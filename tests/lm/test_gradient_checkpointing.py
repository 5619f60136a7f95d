"""Gradient checkpointing on the student only: the teacher runs once per step, losses and gradients unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import TokenCrossEntropy, TokenKL
from distill.models import build_model
from distill.models.gradient_checkpointing import enable_gradient_checkpointing, is_checkpointing
from distill.models.lora import with_lora

VOCAB = 64


def token_batches(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (count, 2, 10), generator=generator)
    return [{"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x} for x in ids]


class Calls:
    """Counts the runs of a module's ``forward`` (wrapped: the recomputation in backward runs no forward hooks)."""

    def __init__(self, module: nn.Module) -> None:
        self.count, forward = 0, module.forward

        def counted(*args, **kwargs):
            self.count += 1
            return forward(*args, **kwargs)

        module.forward = counted


@pytest.mark.parametrize("checkpointing", [True, False])
def test_the_teacher_runs_once_per_step_and_only_the_student_is_recomputed(make_gpt2, fast_trainer, checkpointing):
    torch.manual_seed(0)
    teacher, student = make_gpt2(VOCAB, layers=2), make_gpt2(VOCAB, layers=2, width=16)
    enable_gradient_checkpointing(teacher)  # asked for on the teacher too: the module turns it off there
    if checkpointing:
        enable_gradient_checkpointing(student)
    module = DistillationModule(student, teacher, {"kd": TokenKL(temperature=2.0)})
    assert not is_checkpointing(teacher) and is_checkpointing(student) == checkpointing
    teacher_calls, teacher_block, student_block = Calls(teacher), Calls(teacher.transformer.h[0].mlp), Calls(student.transformer.h[0].mlp)
    steps = 3
    fast_trainer(max_steps=steps, limit_val_batches=0).fit(module, train_dataloaders=DataLoader(token_batches(steps), batch_size=None))
    assert teacher_calls.count == steps and teacher_block.count == steps
    # a layer in the student's first block: once forward, once more in backward when checkpointed (so it is on)
    assert student_block.count == steps * (2 if checkpointing else 1)


@pytest.mark.parametrize("lora", [False, True])
def test_checkpointing_gives_the_same_loss_and_gradients(make_gpt2, lora):
    torch.manual_seed(0)
    teacher, plain = make_gpt2(VOCAB, layers=2), make_gpt2(VOCAB, layers=2, width=16)  # dropout 0.1 on
    if lora:
        plain = with_lora(plain, r=4, dropout=0.1)
        with torch.no_grad():
            for name, p in plain.named_parameters():
                if "lora_B" in name:
                    p.normal_()
    checkpointed = copy.deepcopy(plain)
    enable_gradient_checkpointing(checkpointed.get_base_model() if lora else checkpointed)
    assert is_checkpointing(checkpointed) and not is_checkpointing(plain)
    batch = token_batches(1)[0]
    results = []
    for student in (plain, checkpointed):
        module = DistillationModule(student, copy.deepcopy(teacher), {"kd": TokenKL(temperature=2.0), "ce": TokenCrossEntropy(0.5)})
        module.train()
        torch.manual_seed(1)  # the same dropout masks (checkpointing replays the forward's RNG state)
        loss = module.training_step(batch, 0)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in student.named_parameters() if p.requires_grad}))
    (loss_plain, grads_plain), (loss_ckpt, grads_ckpt) = results
    torch.testing.assert_close(loss_ckpt, loss_plain, rtol=0, atol=1e-6)
    assert grads_plain.keys() == grads_ckpt.keys() and grads_plain
    for name in grads_plain:
        torch.testing.assert_close(grads_ckpt[name], grads_plain[name], rtol=1e-5, atol=1e-6)


def test_the_student_config_turns_it_on_and_a_model_without_it_is_refused():
    torch.manual_seed(0)
    config = {"model_type": "gpt2", "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 16}
    assert is_checkpointing(build_model("hf_causal_lm", VOCAB, config=config, gradient_checkpointing=True))
    assert not is_checkpointing(build_model("hf_causal_lm", VOCAB, config=config))
    with pytest.raises(DistillError, match="a Linear does not support gradient checkpointing.*gradient_checkpointing=false"):
        enable_gradient_checkpointing(nn.Linear(2, 2))
