"""Many short runs in one process: memory stays flat (no leak from hooks, metrics or logging)."""

from __future__ import annotations

import gc

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from distill import DistillationModule
from distill.losses import KD, AttentionTransfer, CrossEntropy, FitNet


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_two_hundred_runs_keep_memory_flat(make_cnn, fast_trainer):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,)))
    teacher = make_cnn(width=8)

    def one_run():
        terms = {
            "kd": KD(), "ce": CrossEntropy(), "fitnet": FitNet("2", "2"), "at": AttentionTransfer("0", "0"),
        }
        module = DistillationModule(make_cnn(width=4), teacher, terms)
        loader = DataLoader(data, batch_size=16)
        trainer = fast_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1)
        trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
        trainer.test(module, loader, verbose=False)

    for _ in range(20):  # warm-up: allocator pools and caches fill
        one_run()
    gc.collect()
    start = rss_mb()
    for _ in range(180):
        one_run()
    gc.collect()
    growth = rss_mb() - start
    assert growth < 40, f"memory grew by {growth:.1f} MB over 180 runs"
    assert not any(m._forward_hooks for m in teacher.modules()), "hooks left on the teacher"
