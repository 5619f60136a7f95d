"""The teacher under Lightning's DeepSpeedStrategy, two CPU processes on gloo: partitioned by ZeRO-3 for forward passes
only (whole under ZeRO-2, which shards no weights), never in the optimizer or the checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from distill.models.fingerprint import dtypes_of
from distill.teachers.sharded import _deepspeed_precision, is_deepspeed_engine, teacher_weights_sha256

RUN = Path(__file__).with_name("deepspeed_teacher_run.py")


@pytest.mark.slow  # two processes, about 30 s each on 2 cores
@pytest.mark.parametrize("precision, stage", [("32-true", 3), ("bf16-mixed", 3), ("32-true", 2)])
def test_deepspeed_partitions_the_teacher_for_forward_only_and_keeps_it_out_of_optimizer_and_checkpoint(
        tmp_path, precision, stage):
    pytest.importorskip("deepspeed", reason="DS_BUILD_OPS=0 pip install --no-build-isolation deepspeed==0.19.8 "
                                            "(README, 'Language models')")
    result = subprocess.run([sys.executable, str(RUN), str(tmp_path), precision, str(stage)], capture_output=True,
                            text=True, timeout=600, cwd=RUN.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for seen in ranks:
        assert seen["world_size"] == 2 and seen["steps"] == 3 and seen["module_class"] == "DeepSpeedEngine"
        if stage == 3:
            # partitioned: every teacher weight is a ZeRO-3 placeholder, each rank holds half of them (no optimizer)
            assert seen["teacher_is_engine"] and seen["teacher_partitioned"] and seen["teacher_whole_numel"] == 0
            assert seen["teacher_local_numel"] == seen["teacher_half_numel"] == seen["teacher_full_numel"] // 2
            assert seen["teacher_optimizer"] == "DeepSpeedZeRoOffload"  # DeepSpeed's parameter partitioner
            assert seen["student_is_partitioned"]
        else:
            # ZeRO-2 shards gradients and optimizer state only: the teacher, which has neither, stays whole
            assert not seen["teacher_is_engine"] and seen["teacher_whole_numel"] == seen["teacher_full_numel"]
        # forward only: the gathered forward gives the whole teacher's logits (in the precision's dtype), no gradients
        assert seen["max_logit_difference"] <= 1e-6 * max(1.0, seen["logit_scale"])
        assert not seen["teacher_requires_grad"] and seen["teacher_grads"] == []
        # never in the optimizer: it steps on the student's half alone
        assert seen["optimizer_tensors_from_teacher"] == 0
        assert seen["optimizer_numel"] == seen["student_half_numel"]
        # unchanged by training; cast to bfloat16 by DeepSpeed's half precision, so hashed again as it ran
        assert seen["sha_unchanged"] and seen["sha_as_given"]
        assert seen["as_run_is_as_given"] == (precision == "32-true")
    # never in the checkpoint: the gathered state dict is the student's, and distill's record of the teacher
    assert ranks[0]["checkpoint_keys"] == ranks[0]["student_keys"]
    assert ranks[0]["checkpoint_distill"] == ["rng", "teacher_sha256", "teacher_source"]


def strategy(config, precision="32-true"):
    return SimpleNamespace(config=config, precision_plugin=SimpleNamespace(precision=precision))


@pytest.mark.parametrize("config, precision, expected", [
    ({}, "32-true", {}),
    ({}, "bf16-mixed", {"bf16": {"enabled": True}}),
    ({}, "16-mixed", {"fp16": {"enabled": True}}),
    ({"bf16": {"enabled": False}}, "bf16-mixed", {"bf16": {"enabled": False}}),  # the user's config wins
    ({"fp16": {"enabled": True, "loss_scale": 0}}, "32-true", {"fp16": {"enabled": True}}),  # no loss scale: no backward
])
def test_the_teachers_engine_takes_the_strategys_precision(config, precision, expected):
    assert _deepspeed_precision(strategy(config, precision)) == expected


def test_a_plain_teacher_is_hashed_as_it_is_and_its_dtypes_follow_a_cast():
    from distill.models import weights_sha256

    teacher = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    assert not is_deepspeed_engine(teacher) and teacher_weights_sha256(teacher) == weights_sha256(teacher)
    before = dtypes_of(teacher)
    assert before == ("torch.float32",) * 4 + ("torch.float32", "torch.float32", "torch.int64")
    teacher.to(torch.bfloat16)
    assert dtypes_of(teacher) != before and "torch.int64" in dtypes_of(teacher)  # the counter stays an integer
