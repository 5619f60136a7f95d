"""Two CPU processes (gloo) under Lightning's DeepSpeedStrategy (ZeRO stage 2 or 3): what happens to the teacher.
Run by test_deepspeed_teacher.py.

``python deepspeed_teacher_run.py OUT_DIR PRECISION STAGE``: Lightning's launcher starts the second rank by running
this script again; each rank writes ``OUT_DIR/rank<r>.json`` with what it saw.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel

from distill import DistillationModule
from distill.losses import TokenKL
from distill.models.fingerprint import weights_sha256
from distill.teachers.sharded import is_deepspeed_engine, teacher_weights_sha256

VOCAB, LENGTH = 64, 12
#: ZeRO-3 with every parameter partitioned (by default ZeRO-3 keeps parameters under 100k elements whole on every rank)
ZERO = {3: {"stage": 3, "stage3_param_persistence_threshold": 0}, 2: {"stage": 2}}


class CPUDeepSpeedStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeedStrategy, made to run on CPU (DeepSpeed's CPU accelerator, gloo) in three places, its
    training loop untouched.

    1. ``setup_environment`` refuses any accelerator but CUDA ("The DeepSpeed strategy is only supported on CUDA
       GPUs"); here it is the parallel strategies' own.
    2. ``setup_distributed`` checks the devices' indices against the local ranks (``None`` on CPU); here it is left out.
    3. the student's ``deepspeed.initialize`` gets ``device_rank=root_device.index``, ``None`` on CPU, which DeepSpeed
       compares with 0; here it gets the local rank.
    """

    def setup_environment(self) -> None:
        DDPStrategy.setup_environment(self)

    def setup_distributed(self) -> None:
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    def _setup_model_and_optimizer(self, model, optimizer, lr_scheduler=None):
        import deepspeed

        engine, optimizer, _, _ = deepspeed.initialize(
            args=argparse.Namespace(device_rank=self.local_rank), config=self.config, model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad], optimizer=optimizer,
            lr_scheduler=lr_scheduler, dist_init_required=False)
        return engine, optimizer


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
            sharded_logits = teacher(input_ids=self.probe).logits.float()
            expected = self.reference(input_ids=self.probe).logits.float()
        optimizer = trainer.optimizers[0]
        optimized = [p for group in optimizer.param_groups for p in group["params"]]
        teacher_ids = {id(p) for p in teacher.parameters()}
        params = list(teacher.parameters())
        self.seen.update(
            teacher_is_engine=is_deepspeed_engine(teacher),
            teacher_partitioned=all(hasattr(p, "ds_tensor") and p.numel() == 0 for p in params),
            teacher_whole_numel=sum(p.numel() for p in params),
            teacher_local_numel=sum(p.ds_tensor.numel() for p in params if hasattr(p, "ds_tensor")),
            teacher_half_numel=sum(math.ceil(p.numel() / 2) for p in self.reference.parameters()),
            teacher_full_numel=sum(p.numel() for p in self.reference.parameters()),
            teacher_requires_grad=any(p.requires_grad for p in params),
            teacher_grads=[n for n, p in teacher.named_parameters() if p.grad is not None],
            teacher_optimizer=type(getattr(teacher, "optimizer", None)).__name__,  # DeepSpeedZeRoOffload: the partitioning, no optimizer
            max_logit_difference=float((sharded_logits - expected).abs().max()),
            logit_scale=float(expected.abs().max()),
            optimizer_tensors_from_teacher=sum(id(p) in teacher_ids for p in optimized),
            # ZeRO-3's optimizer steps on flat float32 partitions of the student's weights, ZeRO-2's on flat copies
            optimizer_numel=sum(t.numel() for t in getattr(optimizer, "fp32_partitioned_groups_flat", None)
                                or getattr(optimizer, "single_partition_of_fp32_groups", None) or optimized),
            student_half_numel=sum(math.ceil(p.numel() / 2) for p in gpt2(1, 16, seed=2).parameters()),
            student_is_partitioned=all(hasattr(p, "ds_tensor") for p in pl_module.student.parameters()),
            module_class=type(trainer.strategy.model).__name__,
        )


def main(out_dir: Path, precision: str, stage: int) -> None:
    config = {"zero_optimization": ZERO[stage], "train_micro_batch_size_per_gpu": 4}
    teacher, student = gpt2(2, 32, seed=0), gpt2(1, 16, seed=2)
    reference = copy.deepcopy(teacher).eval()
    if precision.startswith("bf16"):
        reference.to(torch.bfloat16)
    sha_before = weights_sha256(teacher)
    module = DistillationModule(student, teacher, {"kd": TokenKL(temperature=2.0)},
                                optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2))
    seen = Seen(reference, batches()[0]["input_ids"][None])
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=CPUDeepSpeedStrategy(config=config), precision=precision,
                        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(out_dir), callbacks=[seen], limit_val_batches=0)
    trainer.fit(module, train_dataloaders=DataLoader(batches(), batch_size=4))
    checkpoint = out_dir / "last.ckpt"
    trainer.save_checkpoint(checkpoint)  # a collective under DeepSpeed: every rank writes its partition
    trainer.strategy.barrier()
    rank = trainer.global_rank
    seen.seen.update(rank=rank, world_size=trainer.world_size, steps=trainer.global_step,
                     sha_unchanged=teacher_weights_sha256(module.teacher) == module.teacher_sha256_as_run,
                     sha_as_given=module.teacher_sha256 == sha_before,
                     as_run_is_as_given=module.teacher_sha256_as_run == sha_before)
    if rank == 0:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        files = checkpoint / "checkpoint"
        name = "zero_pp_rank_0_mp_rank_00_model_states.pt" if stage == 3 else "mp_rank_00_model_states.pt"
        state = torch.load(files / name, map_location="cpu", weights_only=False)
        whole = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint))  # the partitions gathered into one state dict
        seen.seen.update(checkpoint_keys=sorted(whole), student_keys=sorted(student_keys()),
                         checkpoint_numel=sum(t.numel() for t in whole.values()),
                         checkpoint_files=sorted(p.name for p in files.iterdir()),
                         checkpoint_distill=sorted(state.get("distill", {})))
    (out_dir / f"rank{rank}.json").write_text(json.dumps(seen.seen))


def student_keys() -> list[str]:
    return ["student." + k for k in gpt2(1, 16, seed=2).state_dict()]


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
