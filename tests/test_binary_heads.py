"""Several binary teachers merged into one multi-head student (issue 6: multi-teacher), in Python and on the CLI."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from distill import DistillationModule
from distill.data import DigitHeadsDataModule
from distill.losses import BCEKD, MaskedBCE
from distill.supervised import SupervisedModule
from distill.teachers import TeacherEnsemble

HEADS = [[1, 0], [2, 0], [3, 0], [4, 0]]
ADAM = functools.partial(torch.optim.Adam, lr=0.01)  # few epochs suffice with Adam on these tiny nets


def mlp(hidden: int, outputs: int) -> nn.Module:
    """On 8×8 digits a small MLP learns in a few epochs what a tiny CNN needs many for."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


def test_four_binary_teachers_merge_into_one_student_that_keeps_their_decisions(fast_trainer):
    torch.manual_seed(0)
    teachers = {}
    for positive, negative in HEADS:
        # each teacher sees only its own two digits, all labelled, and has one output
        view = DigitHeadsDataModule(heads=[[positive, negative]], label_fraction=1.0, only_defined=True,
                                    batch_size=32, image_size=8, channels=1)
        teacher = mlp(32, outputs=1)
        fast_trainer(max_epochs=4).fit(SupervisedModule(teacher, optimizer=ADAM), datamodule=view)
        teachers[f"{positive}_vs_{negative}"] = teacher
    ensemble = TeacherEnsemble(teachers, combine="concat")

    # the student's data: all digits, each head labelled on half of its training samples
    data = DigitHeadsDataModule(heads=HEADS, label_fraction=0.5, batch_size=32, image_size=8, channels=1)
    student = mlp(32, outputs=4)
    module = DistillationModule(student, ensemble, {"masked_bce": MaskedBCE(), "bce_kd": BCEKD()}, optimizer=ADAM)
    fast_trainer(max_epochs=4).fit(module, datamodule=data)

    data.setup()
    x, targets = data.splits["test"].inputs, data.splits["test"].labels
    with torch.no_grad():
        student_says = student.eval()(x) > 0
        for k, teacher in enumerate(teachers.values()):
            teacher_says = teacher.eval()(x)[:, 0] > 0
            relevant = targets[:, k] != -1  # the head's own two digits, every test sample of them
            assert relevant.sum() > 45
            teacher_right = (teacher_says[relevant] == (targets[relevant, k] == 1)).float().mean().item()
            match = (student_says[relevant, k] == teacher_says[relevant]).float().mean().item()
            print(f"head {k + 1}: teacher right on {teacher_right:.3f}, student matches it on {match:.3f}")
            assert teacher_right >= 0.95, (k, teacher_right)  # a teacher worth copying
            assert match >= 0.95, (k, match)


@pytest.mark.slow  # about 2 minutes: five torchvision models
def test_experiment_binary_heads_runs_end_to_end(tmp_path):
    """The experiment config on the real CLI, shrunk to a few batches: four members trained first, one student."""
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", "experiment=binary_heads", "data.image_size=8",
         "teacher.train.epochs=1", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "report.latency=off",
         "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout + result.stderr).count("trained and cached") == 4
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["teacher"]["name"] == "ensemble" and summary["teacher"]["origin"] == "trained"
    for member in ("one_vs_zero", "two_vs_zero", "three_vs_zero", "four_vs_zero"):
        assert f"{member}: teacher trained by distill" in summary["teacher"]["source"]
    assert summary["student"]["test_accuracy"] is None  # yes/no heads: no single-label accuracy
    assert 0.0 <= summary["agreement"] <= 1.0  # the share of equal yes/no decisions
    from torchvision import models

    student = models.get_model("resnet18", num_classes=4)
    student.load_state_dict(torch.load(summary["student"]["weights"], weights_only=True))
    # each member was trained on its own one-head view: a one-output teacher
    cached = sorted((tmp_path / "cache" / "teachers").glob("resnet18-*.pt"))
    assert len(cached) == 4
    assert all(torch.load(p, weights_only=True)["fc.weight"].shape == (1, 512) for p in cached)


def test_members_take_the_ensembles_schedule_and_their_own_data_view():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from distill.cli.config_directory import config_dir
    from distill.cli.teachers import member_config

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=binary_heads", "+teacher.members.one_vs_zero.train.epochs=2"])
    own, data = member_config(cfg, "one_vs_zero", cfg.teacher.members.one_vs_zero)
    schedule = OmegaConf.to_container(own.train, resolve=True)
    assert schedule["epochs"] == 2 and schedule["lr_scheduler"]["T_max"] == 2  # its own epochs, its own cosine
    assert schedule["optimizer"]["lr"] == cfg.teacher.train.optimizer.lr
    assert OmegaConf.to_container(member_config(cfg, "two_vs_zero", cfg.teacher.members.two_vs_zero)[0].train,
                                  resolve=True)["lr_scheduler"]["T_max"] == 5  # the ensemble's
    # the run's data config with the member's entries on top: one head, its two digits only
    assert data.heads == [[1, 0]] and data.only_defined and data.image_size == cfg.data.image_size
    assert own.checkpoint is None and own.weights is None and "data" not in own
