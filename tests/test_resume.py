"""Stopping and continuing a run: resume=true, ckpt_path, SIGTERM (pre-emption)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import torch

TINY = [
    "teacher=resnet18", "student=mobilenet_v3_small", "data.image_size=8", "teacher.train.epochs=1",
    "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
]


def run_cli(*args, cache):
    env = {**os.environ, "DISTILL_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "distill.run", *TINY, *args], env=env,
                          capture_output=True, text=True, timeout=600)


def epochs_logged(metrics_csv):
    return [r["epoch"] for r in csv.DictReader(open(metrics_csv)) if r.get("val/acc")]


def test_resume_continues_from_last_checkpoint_and_keeps_the_first_logs(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    first = run_cli("trainer.max_epochs=2", f"hydra.run.dir={run_dir}", cache=cache)
    assert first.returncode == 0, first.stderr[-2000:]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1

    second = run_cli("trainer.max_epochs=3", "resume=true", f"hydra.run.dir={run_dir}", cache=cache)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Resuming from" in second.stderr + second.stdout
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    assert epochs_logged(run_dir / "logs" / "metrics.csv") == ["0", "1"]
    assert epochs_logged(run_dir / "logs" / "resumed-1" / "metrics.csv") == ["2"]


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    result = run_cli("resume=true", f"hydra.run.dir={tmp_path / 'fresh'}", cache=tmp_path / "cache")
    assert result.returncode == 2
    assert "resume=true but" in result.stderr and "last.ckpt does not exist" in result.stderr


def test_resume_against_another_teacher_is_refused(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    assert run_cli("trainer.max_epochs=1", f"hydra.run.dir={run_dir}", cache=cache).returncode == 0
    other = run_cli("trainer.max_epochs=2", "resume=true", "seed=7", f"hydra.run.dir={run_dir}", cache=cache)
    assert other.returncode == 2 and "trained against another teacher" in other.stderr


def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    env = {**os.environ, "DISTILL_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    args = [a for a in TINY if "limit_train_batches" not in a]
    process = subprocess.Popen(
        [sys.executable, "-m", "distill.run", *args, "trainer.max_epochs=50", f"hydra.run.dir={run_dir}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 300
        while not (run_dir / "checkpoints" / "last.ckpt").exists():  # first epoch done
            assert process.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
            time.sleep(0.2)
        first = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        time.sleep(1.0)  # well inside a later epoch
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, output[-3000:]
    assert "Received SIGTERM: saved" in output and "resume with resume=true" in output
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] > first
    assert not list((run_dir / "checkpoints").glob("*.tmp"))


def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    """SIGKILL in the middle of an epoch, resume=true: the final student equals an uninterrupted run's."""
    cache = tmp_path / "cache"
    env = {**os.environ, "DISTILL_CACHE_DIR": str(cache)}
    args = [a for a in TINY if "limit_train_batches" not in a] + ["trainer.max_epochs=3", "seed=5"]
    whole = subprocess.run([sys.executable, "-m", "distill.run", *args, f"hydra.run.dir={tmp_path / 'whole'}"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]

    run_dir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "distill.run", *args, f"hydra.run.dir={run_dir}"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        last = run_dir / "checkpoints" / "last.ckpt"
        deadline = time.time() + 300
        while not (last.exists() and torch.load(last, weights_only=True)["epoch"] >= 0):
            assert process.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
            time.sleep(0.05)
        time.sleep(0.3)  # inside the second epoch
        process.kill()
        process.wait(timeout=60)
    finally:
        process.kill()
    assert torch.load(last, weights_only=True)["epoch"] < 2, "the run finished before it was killed"

    resumed = subprocess.run([sys.executable, "-m", "distill.run", *args, "resume=true", f"hydra.run.dir={run_dir}"],
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    reference = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["epoch"] == reference["epoch"] == 2
    assert final["state_dict"].keys() == reference["state_dict"].keys()
    for key, value in reference["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key
