"""Two CPU processes (gloo) under Lightning's DDPStrategy, one training step of token KD. Run by test_path_equivalence.py.

``python ddp_token_normalizer_run.py OUT_DIR``: Lightning's launcher starts the second rank by running this script
again; each rank writes ``OUT_DIR/rank<r>.pt`` with its batch's sample indices, its loss-carrying token count, the
normalizer it used, its loss and the student's gradients after DDP's all-reduce (before the optimizer step).

The four examples are built so that the two ranks hold very different numbers of loss tokens: rank ``r`` reads
the samples ``r`` and ``r + 2`` (:class:`RankSampler`, in place of Lightning's shuffling DistributedSampler),
rank 0 few, rank 1 many.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from distill import DistillationModule
from distill.data.lm_text import TokenExamples
from distill.lm.tokens import IGNORE_INDEX
from distill.losses import TokenJSD, TokenKL, TokenReverseKL

VOCAB, BLOCK = 40, 12
#: (length, prompt tokens) of the four examples; rank 0 holds 0 and 2 (2 + 2 loss tokens), rank 1 holds 1 and 3 (11 + 9)
SHAPES = [(12, 10), (12, 1), (8, 6), (10, 0)]


def gpt2(width: int, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_layer=1, n_embd=width, n_head=2, n_positions=BLOCK, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def models():
    """``(teacher, student)``: tiny GPT-2s of widths 16 and 8 (a few thousand parameters), fixed seeds."""
    return gpt2(16, seed=0), gpt2(8, seed=1)


def terms(temperatures=(2.0, 1.5, 1.0), **options) -> dict:
    """KL with temperature, JSD(β) and reverse KL; ``options`` (``chunk_size``, ``top_k``) go to all three."""
    kl, jsd, rkl = temperatures
    return {"kl": TokenKL(temperature=kl, **options), "jsd": TokenJSD(beta=0.3, temperature=jsd, **options),
            "rkl": TokenReverseKL(temperature=rkl, **options)}


def examples() -> list[tuple[list[int], list[int]]]:
    generator = torch.Generator().manual_seed(5)
    made = []
    for length, prompt in SHAPES:
        ids = torch.randint(1, VOCAB, (length,), generator=generator).tolist()
        made.append((ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return made


def dataset() -> TokenExamples:
    return TokenExamples(examples(), BLOCK, 0, labels=True, with_index=True)


class RankSampler(Sampler):
    """Rank ``r`` of the two reads the samples ``r`` and ``r + 2``, in that order."""

    def __iter__(self):
        rank = torch.distributed.get_rank()
        return iter([rank, rank + 2])

    def __len__(self) -> int:
        return 2


class Seen(L.Callback):
    """Keeps the student's gradients as the optimizer gets them: after DDP has averaged them over the ranks."""

    def __init__(self) -> None:
        self.seen = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen["indices"] = batch["index"].tolist()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        student = pl_module.student
        self.seen["grads"] = {name: p.grad.detach().clone() for name, p in student.named_parameters()}
        outputs, _ = pl_module.last_step
        normalizer = outputs.token_normalizer
        self.seen["normalizer"] = None if normalizer is None else float(normalizer)
        self.seen["local_tokens"] = int((outputs.labels[:, 1:] != IGNORE_INDEX).sum())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen["loss"] = float(outputs["loss"])


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)  # two processes on a shared machine
    teacher, student = models()
    module = DistillationModule(student, teacher, terms(), optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    module.record_steps = True  # keeps the step's outputs (and so the normalizer) in module.last_step
    seen = Seen()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(out_dir), callbacks=[seen], limit_val_batches=0, use_distributed_sampler=False)
    trainer.fit(module, train_dataloaders=DataLoader(dataset(), batch_size=2, sampler=RankSampler()))
    seen.seen.update(rank=trainer.global_rank, world_size=trainer.world_size)
    torch.save(seen.seen, out_dir / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
