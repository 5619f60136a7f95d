"""benchmarks/gpu_check.py without a GPU: the clean exit, the plan, the ratios, and the mechanics at tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_check

pytestmark = pytest.mark.slow  # real training runs (minutes on 2 cores): `pytest -m slow`, which CI runs


def test_without_cuda_it_says_so_and_exits_cleanly():
    import os

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py")], capture_output=True, text=True, timeout=300, env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "no CUDA device: nothing checked"


def test_plan_covers_every_path():
    cases = gpu_check.plan(gpu_check.PAIRS, gpu_check.PRECISIONS, compile=True)
    # per pair: 4 contenders x 3 precisions, and the 5 option runs
    assert len(cases) == 2 * (4 * 3 + 5)
    names = {(c.contender, c.precision) for c in cases}
    assert {("distill_compile", "bf16-mixed"), ("distill_teacher_bf16", "32-true"), ("distill_cached", "16-mixed")} <= names
    assert not any(c.options.get("compile") for c in gpu_check.plan(gpu_check.PAIRS, ["bf16-mixed"], compile=False))


def test_ratios_pair_each_contender_with_its_reference():
    def result(contender, precision, seconds, memory=None):
        return {
            "teacher": "t", "student": "s", "contender": contender, "precision": precision,
            "seconds_per_step": seconds, "peak_device_mb": memory,
        }

    rows = gpu_check.ratios([
        result("hand", "32-true", 0.10, 1000.0), result("distill", "32-true", 0.11, 1050.0),
        result("student_only", "32-true", 0.05), result("distill_cached", "32-true", 0.06),
        result("distill_compile", "32-true", 0.088), result("distill", "bf16-mixed", 0.2),  # no bf16 hand: no ratio
    ])
    assert {(r["ratio"], r["precision"]): r["value"] for r in rows} == {
        ("distill/hand", "32-true"): pytest.approx(1.1),
        ("distill/hand (peak device memory)", "32-true"): pytest.approx(1.05),
        ("distill_cached/student_only", "32-true"): pytest.approx(1.2),
        ("distill_compile/distill", "32-true"): pytest.approx(0.8),
    }


def test_clock_times_the_steps_after_warmup_and_checks_the_losses():
    setup = gpu_check.Setup(device="cpu", warmup=2, steps=3)
    clock = gpu_check.DeviceClock(setup)
    for loss in (1.0, 2.0, 3.0, 4.0):
        clock.tick(torch.tensor(loss))
    with pytest.raises(RuntimeError, match="4 steps ran, expected 5"):
        clock.seconds_per_step()
    clock.tick(torch.tensor(float("nan")))
    assert clock.seconds_per_step() >= 0 and not clock.all_finite()


def test_dry_run_mechanics(tmp_path):
    out = tmp_path / "gpu_check.json"
    contenders = ["student_only", "distill_cached", "distill_teacher_bf16"]
    argv = ["--dry-run", "--precisions", "32-true", "--contenders", *contenders, "--json", str(out)]
    assert gpu_check.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu (dry run)" and report["failed"] == [] and report["skipped"] == []
    assert [r["contender"] for r in report["results"]] == contenders
    assert all(r["loss_finite"] and r["teacher_unchanged"] for r in report["results"])
    assert {r["ratio"] for r in report["ratios"]} == {"distill_cached/student_only"}


def test_a_run_that_writes_to_the_teacher_fails_the_check(monkeypatch, tmp_path):
    def writes_to_teacher(case, setup, teacher, student, clock, **_):
        with torch.no_grad():
            next(teacher.parameters()).add_(1.0)
        for _ in range(setup.warmup + setup.steps):
            clock.tick(torch.tensor(1.0))

    monkeypatch.setitem(gpu_check.RUNNERS, "hand", writes_to_teacher)
    result = gpu_check.run_case(gpu_check.Case("resnet8", "resnet8", "hand", "32-true"), gpu_check.Setup("cpu", 8, 2, 1, 1, 10), str(tmp_path))
    assert result["loss_finite"] and not result["teacher_unchanged"]


@pytest.mark.slow
def test_full_dry_run(tmp_path):  # every path but 16-mixed and compile, on the CPU: a minute or more
    assert gpu_check.main(["--dry-run", "--json", str(tmp_path / "g.json")]) == 0
