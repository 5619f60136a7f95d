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

import sharded_pair as pair  # beside this script (its folder is on the path)
from distill import DistillationModule
from distill.losses import TokenKL
from distill.models.fingerprint import weights_sha256
from distill.teachers.sharded import is_deepspeed_engine, teacher_weights_sha256

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


class Seen(pair.FirstStepProbe):
    """What DeepSpeed shows: under ZeRO-3 the teacher partitioned in its own engine, under ZeRO-2 whole."""

    def record(self, trainer, pl_module, teacher, optimizer, optimized) -> None:
        params = list(teacher.parameters())
        self.seen.update(
            teacher_is_engine=is_deepspeed_engine(teacher),
            teacher_partitioned=all(hasattr(p, "ds_tensor") and p.numel() == 0 for p in params),
            teacher_whole_numel=sum(p.numel() for p in params),
            teacher_local_numel=sum(p.ds_tensor.numel() for p in params if hasattr(p, "ds_tensor")),
            teacher_half_numel=sum(math.ceil(p.numel() / 2) for p in self.reference.parameters()),
            # DeepSpeedZeRoOffload: the engine's parameter partitioner, no optimizer
            teacher_optimizer=type(getattr(teacher, "optimizer", None)).__name__,
            # ZeRO-3's optimizer steps on flat float32 partitions of the student's weights, ZeRO-2's on flat copies
            optimizer_numel=sum(t.numel() for t in getattr(optimizer, "fp32_partitioned_groups_flat", None)
                                or getattr(optimizer, "single_partition_of_fp32_groups", None) or optimized),
            student_half_numel=sum(math.ceil(p.numel() / 2) for p in pair.student().parameters()),
            student_is_partitioned=all(hasattr(p, "ds_tensor") for p in pl_module.student.parameters()),
            module_class=type(trainer.strategy.model).__name__,
        )


def main(out_dir: Path, precision: str, stage: int) -> None:
    config = {"zero_optimization": ZERO[stage], "train_micro_batch_size_per_gpu": 4}
    teacher, student = pair.teacher(), pair.student()
    reference = copy.deepcopy(teacher).eval()
    if precision.startswith("bf16"):
        reference.to(torch.bfloat16)
    sha_before = weights_sha256(teacher)
    module = DistillationModule(student, teacher, {"kd": TokenKL(temperature=2.0)},
                                optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2))
    seen = Seen(reference, pair.batches()[0]["input_ids"][None])
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=CPUDeepSpeedStrategy(config=config), precision=precision,
                        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(out_dir), callbacks=[seen], limit_val_batches=0)
    trainer.fit(module, train_dataloaders=DataLoader(pair.batches(), batch_size=4))
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
        seen.seen.update(checkpoint_keys=sorted(whole), student_keys=sorted(pair.student_keys()),
                         checkpoint_numel=sum(t.numel() for t in whole.values()),
                         checkpoint_files=sorted(p.name for p in files.iterdir()),
                         checkpoint_distill=sorted(state.get("distill", {})))
    (out_dir / f"rank{rank}.json").write_text(json.dumps(seen.seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
