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
from transformers.models.gpt2.modeling_gpt2 import GPT2Block

import sharded_pair as pair  # beside this script (its folder is on the path)
from distill import DistillationModule
from distill.losses import TokenKL
from distill.models.fingerprint import weights_sha256



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


class Seen(pair.FirstStepProbe):
    """What FSDP shows: the teacher its own FSDP root of units, each rank holding half of it and of the student."""

    def record(self, trainer, pl_module, teacher, optimizer, optimized) -> None:
        self.seen.update(
            teacher_is_fsdp=isinstance(teacher, FullyShardedDataParallel),
            teacher_units=sum(isinstance(m, FullyShardedDataParallel) for m in teacher.modules()),
            teacher_local_numel=sum(p._local_shard.numel() for m in teacher.modules()
                                    if isinstance(m, FullyShardedDataParallel) for p in m.params),
            optimizer_state_tensors=sum(torch.is_tensor(v) for s in optimizer.state.values() for v in s.values()),
            optimizer_numel=sum(p.numel() for p in optimized),
            student_full_numel=sum(p.numel() for p in pair.student().parameters()),
        )


def main(out_dir: Path) -> None:
    teacher, student = pair.teacher(), pair.student()
    reference = copy.deepcopy(teacher).eval()
    sha_before = weights_sha256(teacher)
    module = DistillationModule(student, teacher, {"kd": TokenKL(temperature=2.0)},
                                optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2))
    seen = Seen(reference, pair.batches()[0]["input_ids"][None])
    strategy = CPUFSDPStrategy(auto_wrap_policy=ModuleWrapPolicy({GPT2Block}), state_dict_type="full")
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_steps=3, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(out_dir), callbacks=[seen], limit_val_batches=0)
    trainer.fit(module, train_dataloaders=DataLoader(pair.batches(), batch_size=4))
    checkpoint = out_dir / "last.ckpt"
    trainer.save_checkpoint(checkpoint)  # a collective under FSDP: every rank calls it, rank 0 writes
    trainer.strategy.barrier()
    rank = trainer.global_rank
    seen.seen.update(rank=rank, world_size=trainer.world_size, sha_unchanged=weights_sha256(module.teacher) == sha_before,
                     steps=trainer.global_step)
    if rank == 0:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        seen.seen.update(checkpoint_keys=sorted(state["state_dict"]), student_keys=sorted(pair.student_keys()),
                         checkpoint_distill=sorted(state.get("distill", {})))
    (out_dir / f"rank{rank}.json").write_text(json.dumps(seen.seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
