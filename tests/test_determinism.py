"""Same config and seed on the CPU: the same metrics and the same student weights."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys

import torch

TINY = [
    "teacher=resnet18", "student=mobilenet_v3_small", "data.image_size=8", "trainer.max_epochs=2",
    "teacher.train.epochs=1", "+trainer.limit_train_batches=3", "report.latency=off", "+trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false", "seed=3",
]


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_two_runs_with_one_seed_are_identical(tmp_path):
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache")}
    summaries, weights = [], []
    for name in ("first", "second"):
        result = subprocess.run(
            [sys.executable, "-m", "distill.run", *TINY, f"hydra.run.dir={tmp_path / name}"],
            env=env, capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        summaries.append(json.loads((tmp_path / name / "summary.json").read_text()))
        weights.append(torch.load(tmp_path / name / "student.pt", weights_only=True))
    # the second run reuses the cached teacher: the student must not depend on how the teacher came
    assert summaries[0]["teacher"]["origin"] == "trained" and summaries[1]["teacher"]["origin"] == "cache"
    for key in ("agreement",):
        assert summaries[0][key] == summaries[1][key]
    assert summaries[0]["student"]["test_accuracy"] == summaries[1]["student"]["test_accuracy"]
    assert summaries[0]["teacher"]["sha256"] == summaries[1]["teacher"]["sha256"] == summaries[1]["teacher"]["sha256_after"]
    report = json.loads((tmp_path / "second" / "report.json").read_text())
    assert report["meta"]["teacher_sha256_before"] == report["meta"]["teacher_sha256_after"] == summaries[1]["teacher"]["sha256"]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
