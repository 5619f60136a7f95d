"""The tiny GPT-2 pair and batches the sharded-teacher runs (fsdp_teacher_run.py, deepspeed_teacher_run.py) train."""

from __future__ import annotations

import lightning as L
import torch
from transformers import GPT2Config, GPT2LMHeadModel

VOCAB, LENGTH = 64, 12


def gpt2(layers: int, width: int, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_layer=layers, n_embd=width, n_head=2, n_positions=LENGTH,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


def teacher() -> GPT2LMHeadModel:
    return gpt2(2, 32, seed=0)


def student() -> GPT2LMHeadModel:
    return gpt2(1, 16, seed=2)


def batches() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (16, LENGTH), generator=generator)
    return [{"input_ids": row, "attention_mask": torch.ones_like(row), "labels": row} for row in ids]


def student_keys() -> list[str]:
    """The keys of the student's weights in a DistillationModule's state dict."""
    return ["student." + k for k in student().state_dict()]


class FirstStepProbe(L.Callback):
    """Records, on each rank at the first training step, what every strategy must show: the teacher's forward on a
    probe against the whole reference teacher's, no gradients on it, none of its tensors in the optimizer.
    A subclass's ``record`` adds what its strategy shows (shards, partitions)."""

    def __init__(self, reference: torch.nn.Module, probe: torch.Tensor) -> None:
        self.reference, self.probe, self.seen = reference, probe, {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx:
            return
        teacher, optimizer = pl_module.teacher, trainer.optimizers[0]
        with torch.no_grad():
            sharded_logits = teacher(input_ids=self.probe).logits.float()
            expected = self.reference(input_ids=self.probe).logits.float()
        optimized = [p for group in optimizer.param_groups for p in group["params"]]
        teacher_ids = {id(p) for p in teacher.parameters()}
        self.seen.update(
            teacher_full_numel=sum(p.numel() for p in self.reference.parameters()),
            teacher_requires_grad=any(p.requires_grad for p in teacher.parameters()),
            teacher_grads=[n for n, p in teacher.named_parameters() if p.grad is not None],
            max_logit_difference=float((sharded_logits - expected).abs().max()),
            logit_scale=float(expected.abs().max()),
            optimizer_tensors_from_teacher=sum(id(p) in teacher_ids for p in optimized),
        )
        self.record(trainer, pl_module, teacher, optimizer, optimized)

    def record(self, trainer, pl_module, teacher, optimizer, optimized) -> None:
        raise NotImplementedError
