"""benchmarks/loader_time.py on a tiny setting: both paths run, the ratios are what the times say. No timing asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import loader_time


def test_loader_benchmark_mechanics(tmp_path):
    out = tmp_path / "loader.json"
    report = loader_time.main(["--reps", "2", "--cifar", "64", "--batch-size", "32", "--json", str(out)])
    assert json.loads(out.read_text())["reps"] == 2
    for name, batches in (("digits", 39), ("cifar_augmented", 2)):  # 1,257 / 32 and 64 / 32, the incomplete last batch dropped
        row = report[name]
        assert row["batches"] == batches
        ratios = [m / d for m, d in zip(row["times"]["in_memory"], row["times"]["dataloader"])]
        assert row["ratio_in_memory_to_dataloader"] == pytest.approx(sorted(ratios)[0] / 2 + sorted(ratios)[1] / 2)
        assert (row["ratio_min"], row["ratio_max"]) == (pytest.approx(min(ratios)), pytest.approx(max(ratios)))


def test_synthetic_cifar_paths_yield_the_same_shapes():
    for in_memory in (False, True):
        torch.manual_seed(0)
        x, y = next(iter(loader_time.SyntheticCIFAR(8, 4, in_memory).train_dataloader()))
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (4,)
