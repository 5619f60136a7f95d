"""Stopping and continuing a run: resume=true, ckpt_path, SIGTERM (pre-emption)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

TINY = [
    "teacher=resnet18", "student=mobilenet_v3_small", "data.image_size=8", "teacher.train.epochs=1",
    "+trainer.limit_train_batches=2", "report.latency=off", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
]


def run_cli(*args, cache):
    env = {**os.environ, "DISTILL_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "distill.run", *TINY, *args], env=env,
                          capture_output=True, text=True, timeout=600)


def epochs_logged(metrics_csv):
    return [r["epoch"] for r in csv.DictReader(open(metrics_csv)) if r.get("val/acc")]


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
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


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    result = run_cli("resume=true", f"hydra.run.dir={tmp_path / 'fresh'}", cache=tmp_path / "cache")
    assert result.returncode == 2
    assert "resume=true but" in result.stderr and "last.ckpt does not exist" in result.stderr


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_resume_against_another_teacher_is_refused(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    assert run_cli("trainer.max_epochs=1", f"hydra.run.dir={run_dir}", cache=cache).returncode == 0
    other = run_cli("trainer.max_epochs=2", "resume=true", "seed=7", f"hydra.run.dir={run_dir}", cache=cache)
    assert other.returncode == 2 and "trained against another teacher" in other.stderr


#: the interrupted runs below: every epoch, seed 5, three epochs
FULL = [a for a in TINY if "limit_train_batches" not in a] + ["trainer.max_epochs=3", "seed=5"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One whole run, the reference for the interrupted ones, and the teacher cache they share."""
    root = tmp_path_factory.mktemp("resume")
    env = {**os.environ, "DISTILL_CACHE_DIR": str(root / "cache")}
    whole = subprocess.run([sys.executable, "-m", "distill.run", *FULL, f"hydra.run.dir={root / 'whole'}"],
                           env=env, capture_output=True, text=True, timeout=900)
    assert whole.returncode == 0, whole.stderr[-2000:]
    return root, env, torch.load(root / "whole" / "checkpoints" / "last.ckpt", weights_only=True)


def _start_and_stop_in_second_epoch(run_dir, env, stop):
    process = subprocess.Popen([sys.executable, "-m", "distill.run", *FULL, f"hydra.run.dir={run_dir}"],
                               env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        last = run_dir / "checkpoints" / "last.ckpt"
        deadline = time.time() + 600
        while not (last.exists() and torch.load(last, weights_only=True)["epoch"] >= 0):
            assert process.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
            time.sleep(0.05)
        time.sleep(0.3)  # inside the second epoch
        stop(process)
        output, _ = process.communicate(timeout=300)
    finally:
        process.kill()
    return process.returncode, output, torch.load(last, weights_only=True)


def _resume_and_compare(run_dir, env, reference):
    resumed = subprocess.run([sys.executable, "-m", "distill.run", *FULL, "resume=true", f"hydra.run.dir={run_dir}"],
                             env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["epoch"] == reference["epoch"] == 2
    assert final["state_dict"].keys() == reference["state_dict"].keys()
    for key, value in reference["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(uninterrupted, tmp_path):
    """SIGKILL in the middle of an epoch, resume=true: the final student equals an uninterrupted run's."""
    _, env, reference = uninterrupted
    _, _, saved = _start_and_stop_in_second_epoch(tmp_path / "killed", env, lambda p: p.kill())
    assert saved["epoch"] < 2, "the run finished before it was killed"
    _resume_and_compare(tmp_path / "killed", env, reference)


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_mid_epoch_resumes_to_the_same_weights(uninterrupted, tmp_path):
    """SIGTERM keeps the end-of-epoch checkpoint (a mid-epoch one cannot resume the shuffled loader exactly)."""
    _, env, reference = uninterrupted
    code, output, saved = _start_and_stop_in_second_epoch(tmp_path / "stopped", env, lambda p: p.send_signal(signal.SIGTERM))
    assert code == 143, output[-3000:]
    assert "kept the end-of-epoch checkpoint" in output and "continues from it exactly" in output
    # the end-of-epoch checkpoint, not one written where the signal came
    assert saved["epoch"] < 2 and saved["global_step"] == (saved["epoch"] + 1) * reference["global_step"] // 3
    assert not list((tmp_path / "stopped" / "checkpoints").glob("*.tmp"))
    _resume_and_compare(tmp_path / "stopped", env, reference)


@pytest.mark.slow
def test_resume_true_on_a_finished_run_says_so_and_changes_nothing(uninterrupted):
    root, env, _ = uninterrupted
    run_dir = root / "whole"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and _distills(p)}
    result = subprocess.run([sys.executable, "-m", "distill.run", *FULL, "resume=true", f"hydra.run.dir={run_dir}"],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 2
    assert "is a finished run (3 of trainer.max_epochs=3 epochs trained)" in result.stderr
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and _distills(p)}
    assert after == before


def _distills(path):
    """A file distill writes (not Hydra's record of the command, .hydra/ and the job log)."""
    return ".hydra" not in path.parts and path.suffix != ".log"


@pytest.mark.slow
def test_sigterm_while_the_teacher_trains_says_what_will_work(tmp_path):
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "distill.run", *TINY, "teacher.train.epochs=50", f"hydra.run.dir={tmp_path / 'run'}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    seen = []
    try:
        deadline = time.time() + 600
        # the teacher's fit has started: its phase line, then its first epoch line
        while not any("epoch 1/50" in line for line in seen):
            assert process.poll() is None and time.time() < deadline, "".join(seen)[-3000:]
            seen.append(process.stdout.readline())
        time.sleep(2.0)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=300)
    finally:
        process.kill()
    output = "".join(seen) + output
    assert process.returncode == 143, output[-3000:]
    assert "nothing to resume; run the same command again without resume=true" in output
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
