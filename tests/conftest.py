"""Shared fixtures: tiny models and data so that tests run in seconds on 2 CPU cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]

# tests must never touch the user's cache or the network
os.environ.setdefault("DISTILL_CACHE_DIR", str(REPO / ".cache" / "test-cache"))
torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_cnn(num_classes: int = 10, channels: int = 1, width: int = 8) -> nn.Module:
    """A small conv net with BatchNorm (so running statistics exist to be protected)."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * width, num_classes),
    )


@pytest.fixture
def make_cnn():
    return tiny_cnn


@pytest.fixture
def digits_small():
    """Digits at their native 8×8, one channel."""
    from distill.data import DigitsDataModule

    return DigitsDataModule(batch_size=64, image_size=8, channels=1)


@pytest.fixture
def fast_trainer(tmp_path):
    import lightning as L

    def make(**overrides):
        options = dict(
            max_epochs=1,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
        )
        options.update(overrides)
        return L.Trainer(**options)

    return make
