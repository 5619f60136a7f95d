"""Distillation without labels (issue 6, unlabeled data): inputs only, the teacher's outputs as the only signal."""

from __future__ import annotations

import functools
import time

import pytest
import torch
from torch import nn

from distill import DistillationModule
from distill.data import DigitsDataModule
from distill.losses import KD, PseudoLabel
from distill.supervised import SupervisedModule

ADAM = functools.partial(torch.optim.Adam, lr=0.01)


def mlp(hidden: int) -> nn.Module:
    """On 8×8 digits a small MLP learns in a few epochs what a tiny CNN needs many for."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def test_student_reaches_90_percent_on_digits_with_the_labels_dropped(fast_trainer):
    started = time.perf_counter()
    torch.manual_seed(0)
    # the teacher was trained with labels elsewhere (as a checkpoint would be)
    teacher = mlp(128)
    fast_trainer(max_epochs=5).fit(
        SupervisedModule(teacher, optimizer=ADAM), datamodule=DigitsDataModule(batch_size=32, image_size=8, channels=1)
    )
    unlabelled = DigitsDataModule(batch_size=32, image_size=8, channels=1, labels=False)
    assert isinstance(next(iter(unlabelled.train_dataloader())), torch.Tensor)  # inputs only

    student = mlp(16)
    module = DistillationModule(
        student, teacher, {"kd": KD(temperature=4.0, weight=0.9), "pseudo_label": PseudoLabel(weight=0.1)},
        optimizer=ADAM,
    )
    trainer = fast_trainer(max_epochs=5)
    trainer.fit(module, datamodule=unlabelled)
    results = trainer.test(module, datamodule=unlabelled, verbose=False)[0]
    print(f"teacher {results['test/teacher_acc']:.3f} student {results['test/acc']:.3f} "
          f"in {time.perf_counter() - started:.0f} s")
    assert results["test/teacher_acc"] >= 0.9
    assert results["test/acc"] >= 0.9


@pytest.mark.slow  # 1-2 minutes: torchvision models, the report's latency runs
def test_cli_trains_without_labels_from_an_ensemble_of_given_teachers(tmp_path):
    """data.labels=false on the real CLI: two teacher checkpoints averaged as soft targets, KD + pseudo-labels."""
    import json
    import os
    import subprocess
    import sys

    from torchvision import models

    torch.manual_seed(0)
    for name in ("a", "b"):
        torch.save(models.resnet18(num_classes=10).state_dict(), tmp_path / f"{name}.pt")
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", "teacher=ensemble", "student=mobilenet_v3_small",
         "loss=kd_pseudo_label", "data.labels=false", "data.image_size=8",
         (f"+teacher.members={{a: {{name: resnet18, checkpoint: {tmp_path / 'a.pt'}}}, "
          f"b: {{name: resnet18, checkpoint: {tmp_path / 'b.pt'}}}}}"),
         "teacher.member_weights=[3,1]", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "report.latency=off",
         "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["teacher"]["origin"] == "checkpoint"
    assert summary["teacher"]["source"].startswith("ensemble (soft) of a: checkpoint")
    # trained on inputs only, yet measured: validation and test keep their labels
    assert 0.0 <= summary["student"]["test_accuracy"] <= 1.0
    assert set(summary["loss"]) == {"kd", "pseudo_label"}
    assert not (tmp_path / "cache" / "teachers").exists()  # nothing was trained first
