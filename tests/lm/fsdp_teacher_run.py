"""Two CPU processes (gloo) under Lightning's FSDPStrategy: what happens to the teacher. Run by test_fsdp_teacher.py.

``python fsdp_teacher_run.py OUT_DIR``: Lightning's launcher starts the second rank by running this
script again; each rank writes ``OUT_DIR/rank<r>.json`` with what it saw.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.distributed.fsdp.wrap import ModuleWrapPolicy
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.models.gpt2.modeling_gpt2 import GPT2Block

from distill import DistillationModule
from distill.losses import TokenKL
from distill.models.fingerprint import weights_sha256

VOCAB, LENGTH = 64, 12


class CPUFSDPStrategy(FSDPStrategy):
    """Lightning's FSDPStrategy, made to run on CPU (gloo) in two places, its training loop untouched.

    1. ``Trainer(strategy="fsdp", accelerator="cpu")`` (or an ``FSDPStrategy`` instance) is refused:
       "The strategy `fsdp` requires a GPU accelerator, but received `accelerator='cpu'`"; a subclass
       passes that check (it tests ``type(strategy) is FSDPStrategy``).
    2. Lightning wraps the LightningModule with ``device_id=root_device.index``, ``None`` on CPU, and
       torch's FSDP then raises "FSDP needs a non-CPU accelerator device, but no accelerator device is
       detected."; the same wrap with the CPU device named (``device_id=torch.device("cpu")``) runs.
    """

    def _setup_model(self, model):
        return FullyShardedDataParallel(module=model, cpu_offload=self.cpu_offload, mixed_precision=self.mixed_precision_config,
                                        sharding_strategy=self.sharding_strategy, device_id=self.root_device, **self.kwargs)


def gpt2(layers: int, width: int, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_layer=layers, n_embd=width, n_head=2, n_positions=LENGTH,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


def batches() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (16, LENGTH), generator=generator)
    return [{"input_ids": row, "attention_mask": torch.ones_like(row), "labels": row} for row in ids]


class Seen(L.Callback):
    """Records, on each rank, the teacher's and the optimizer's state during training."""

    def __init__(self, reference: torch.nn.Module, probe: torch.Tensor) -> None:
        self.reference, self.probe, self.seen = reference, probe, {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx:
            return
        teacher = pl_module.teacher
        with torch.no_grad():
            sharded_logits = teacher(input_ids=self.probe).logits
            expected = self.reference(input_ids=self.probe).logits
        optimizer = trainer.optimizers[0]
        optimized = [p for group in optimizer.param_groups for p in group["params"]]
        teacher_ids = {id(p) for p in teacher.parameters()}
        self.seen.update(
            teacher_is_fsdp=isinstance(teacher, FullyShardedDataParallel),
            teacher_units=sum(isinstance(m, FullyShardedDataParallel) for m in teacher.modules()),
            teacher_local_numel=sum(p._local_shard.numel() for m in teacher.modules()
                                    if isinstance(m, FullyShardedDataParallel) for p in m.params),
            teacher_full_numel=sum(p.numel() for p in self.reference.parameters()),
            teacher_requires_grad=any(p.requires_grad for p in teacher.parameters()),
            teacher_grads=[n for n, p in teacher.named_parameters() if p.grad is not None],
            max_logit_difference=float((sharded_logits - expected).abs().max()),
            optimizer_tensors_from_teacher=sum(id(p) in teacher_ids for p in optimized),
            optimizer_state_tensors=sum(torch.is_tensor(v) for s in optimizer.state.values() for v in s.values()),
            optimizer_numel=sum(p.numel() for p in optimized),
            student_full_numel=sum(p.numel() for p in gpt2(1, 16, seed=2).parameters()),
        )


def main(out_dir: Path) -> None:
    teacher, student = gpt2(2, 32, seed=0), gpt2(1, 16, seed=2)
    reference = copy.deepcopy(teacher).eval()
    sha_before = weights_sha256(teacher)
    module = DistillationModule(student, teacher, {"kd": TokenKL(temperature=2.0)},
                                optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2))
    seen = Seen(reference, batches()[0]["input_ids"][None])
    strategy = CPUFSDPStrategy(auto_wrap_policy=ModuleWrapPolicy({GPT2Block}), state_dict_type="full")
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_steps=3, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(out_dir), callbacks=[seen], limit_val_batches=0)
    trainer.fit(module, train_dataloaders=DataLoader(batches(), batch_size=4))
    checkpoint = out_dir / "last.ckpt"
    trainer.save_checkpoint(checkpoint)  # a collective under FSDP: every rank calls it, rank 0 writes
    trainer.strategy.barrier()
    rank = trainer.global_rank
    seen.seen.update(rank=rank, world_size=trainer.world_size, sha_unchanged=weights_sha256(module.teacher) == sha_before,
                     steps=trainer.global_step)
    if rank == 0:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        seen.seen.update(checkpoint_keys=sorted(state["state_dict"]), student_keys=sorted(student_keys()),
                         checkpoint_distill=sorted(state.get("distill", {})))
    (out_dir / f"rank{rank}.json").write_text(json.dumps(seen.seen))


def student_keys() -> list[str]:
    return ["student." + k for k in gpt2(1, 16, seed=2).state_dict()]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
