"""benchmarks/lm_step.py on a tiny setting: both contenders run the same math; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lm_step.py"


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_quick_run_prints_both_contenders_with_the_same_loss(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1"], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    distill, hand = data["contenders"]["distill"], data["contenders"]["hand"]
    # the same models, batch and math: the first step's losses agree
    assert distill["first_loss"] == pytest.approx(hand["first_loss"], rel=1e-5)
    assert data["time_ratio"] == pytest.approx(distill["median_step_s"] / hand["median_step_s"])
    assert data["settings"]["steps"] == 2 and data["threads"] == 1
    assert "distill / hand: time" in result.stdout


def test_on_policy_comparison_runs_in_process_and_lambda_zero_is_the_teacher_forced_step(capsys, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("lm_step", SCRIPT)
    lm_step = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "lm_step", lm_step)  # its dataclasses look their module up
    spec.loader.exec_module(lm_step)
    data = lm_step.main(["--quick", "--on-policy", "--lmbda", "0", "--steps", "1", "--warmup", "0", "--threads", "1"])
    on_policy, forced = data["contenders"]["on-policy"], data["contenders"]["teacher-forced"]
    assert on_policy["first_loss"] == forced["first_loss"]  # λ = 0: exactly the teacher-forced step
    assert "on-policy / teacher-forced: time" in capsys.readouterr().out
    assert data["settings"]["lmbda"] == 0.0
    # like for like: both score the prompt's next new_tokens tokens only (2 rows x 4 tokens in the quick setting)
    assert on_policy["loss_tokens_per_step"] == forced["loss_tokens_per_step"] == 2 * 4
    # λ = 1: every row is the student's own, with as many loss tokens as the teacher-forced rows
    data = lm_step.main(["--quick", "--on-policy", "--lmbda", "1", "--steps", "1", "--warmup", "0", "--threads", "1"])
    on_policy, forced = data["contenders"]["on-policy"], data["contenders"]["teacher-forced"]
    assert on_policy["loss_tokens_per_step"] == forced["loss_tokens_per_step"] == 2 * 4
    assert on_policy["first_loss"] != forced["first_loss"]  # scored on the student's tokens, not the data's
