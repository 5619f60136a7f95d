"""The teacher under Lightning's FSDPStrategy, two CPU processes on gloo: sharded, forward only, not in the checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from distill.teachers.sharded import shard_for_forward

RUN = Path(__file__).with_name("fsdp_teacher_run.py")


@pytest.mark.slow  # two processes, about a minute on 2 cores
def test_fsdp_shards_the_teacher_for_forward_only_and_keeps_it_out_of_optimizer_and_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, str(RUN), str(tmp_path)], capture_output=True, text=True, timeout=600,
                            cwd=RUN.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for seen in ranks:
        assert seen["world_size"] == 2 and seen["steps"] == 3
        # sharded: the teacher is its own FSDP root (one unit per block + the root), each rank holds half its weights
        assert seen["teacher_is_fsdp"] and seen["teacher_units"] == 3
        assert seen["teacher_local_numel"] * 2 == seen["teacher_full_numel"]
        # forward only: the gathered forward equals the whole teacher's, nothing requires or holds a gradient
        assert seen["max_logit_difference"] < 1e-6
        assert not seen["teacher_requires_grad"] and seen["teacher_grads"] == []
        # never in the optimizer: its tensors are the student's shard alone
        assert seen["optimizer_tensors_from_teacher"] == 0
        assert seen["optimizer_numel"] * 2 == seen["student_full_numel"]
        assert seen["sha_unchanged"]
    # never in the checkpoint: the student's weights and distill's record of the teacher (its hash), nothing more
    assert ranks[0]["checkpoint_keys"] == ranks[0]["student_keys"]
    assert ranks[0]["checkpoint_distill"] == ["rng", "teacher_sha256", "teacher_source"]


def test_other_strategies_leave_the_teacher_as_it_is(fast_trainer):
    teacher = nn.Linear(3, 2)
    assert shard_for_forward(teacher, fast_trainer().strategy) is teacher
