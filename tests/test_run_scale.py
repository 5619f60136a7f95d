"""The command line's speed and scale paths: teacher-output cache, DDP on CPU, mixed precision."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from distill.errors import DistillError

#: real runs with the teacher cache, two DDP processes and bf16: minutes on 2 CPU cores
pytestmark = pytest.mark.slow

TINY = [
    "teacher=resnet18", "data.image_size=8", "trainer.max_epochs=1", "teacher.train.epochs=1",
    "+trainer.limit_train_batches=2", "report.latency=off", "+trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
]
#: FitNet on layer2 so that the cache holds teacher features as well as logits
FEATURES = ["student=resnet18", "loss=fitnet", "+loss.kd={_target_: distill.losses.KD, temperature: 4}"]


def run_cli(*args, run_dir, cache):
    env = {**os.environ, "DISTILL_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY, *args, f"hydra.run.dir={run_dir}"],
        env=env, capture_output=True, text=True, timeout=600,
    )


def student_weights(run_dir):
    return torch.load(run_dir / "student.pt", weights_only=True)


@pytest.fixture(scope="module")
def cached_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cached")
    cache = root / "cache"
    runs = {}
    for name, extra in (("first", ["teacher.cache=true"]), ("second", ["teacher.cache=true"]), ("live", [])):
        result = run_cli(*FEATURES, *extra, "+trainer.limit_test_batches=1", run_dir=root / name, cache=cache)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = (root / name, (root / name / "run.log").read_text())
    return cache, runs


def test_first_cached_run_builds_the_cache_with_features(cached_runs):
    cache, runs = cached_runs
    assert "Teacher outputs for 1257 samples cached at" in runs["first"][1]  # the digits training split
    (meta_path,) = (cache / "teacher_outputs").glob("*/meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["layers"] == ["layer2"] and meta["shapes"]["logits.npy"] == [1257, 10]
    assert meta["key"]["data"]["image_size"] == 8 and len(meta["key"]["teacher_sha256"]) == 64


def test_later_run_reads_the_cache_and_trains_the_same_student(cached_runs):
    _, runs = cached_runs
    assert "Teacher outputs read from the cache" in runs["second"][1]
    assert "Teacher outputs for" not in runs["second"][1]  # not built again
    first, second = student_weights(runs["first"][0]), student_weights(runs["second"][0])
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_cached_targets_train_the_student_the_live_teacher_would(cached_runs):
    _, runs = cached_runs
    cached, live = student_weights(runs["first"][0]), student_weights(runs["live"][0])
    for key, value in live.items():
        if value.is_floating_point():
            torch.testing.assert_close(cached[key], value, rtol=1e-3, atol=1e-5, msg=key)


def test_cache_refuses_random_augmentation(tmp_path):
    from distill.cli.teachers import teacher_outputs_from_config

    cfg = OmegaConf.create({"cache_dir": str(tmp_path), "trainer": {"accelerator": "cpu"}})
    augmented = SimpleNamespace(random_augmentation=True)
    with pytest.raises(DistillError, match="same training inputs every epoch.*set data.augment=false or teacher.cache=false"):
        teacher_outputs_from_config(cfg, augmented, torch.nn.Linear(2, 2), {})
    custom = SimpleNamespace(random_augmentation=False)  # a user's data module without the cache hooks
    with pytest.raises(DistillError, match=r"needs the data module to have cache_dataloader\(\)"):
        teacher_outputs_from_config(cfg, custom, torch.nn.Linear(2, 2), {})


def test_ddp_on_two_cpu_processes(tmp_path):
    run_dir, cache = tmp_path / "ddp", tmp_path / "cache"
    result = run_cli(
        "student=mobilenet_v3_small", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "teacher.cache=true", run_dir=run_dir, cache=cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = (run_dir / "run.log").read_text() + (run_dir / "train_ddp_process_1.log").read_text()
    # the teacher is trained once, before the ranks start; rank 1 loads it and the cached outputs
    assert logs.count("training teacher resnet18 first") == 1
    assert logs.count("Teacher resnet18 reused from the cache") == 1
    assert logs.count("Teacher outputs for 1257 samples cached at") == 1
    assert logs.count("Teacher outputs read from the cache") == 1
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "student.pt").is_file()
    # test accuracy synced over both ranks (each saw half the test set) equals rank 0's report on the whole set
    rows = [r for r in csv.DictReader(open(run_dir / "logs" / "metrics.csv")) if r.get("test/acc")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert float(rows[-1]["test/acc"]) == pytest.approx(summary["student"]["test_accuracy"], abs=1e-6)


def test_bf16_mixed_precision_with_a_bf16_teacher_on_cpu(tmp_path):
    result = run_cli(
        "student=mobilenet_v3_small", "trainer.precision=bf16-mixed", "teacher.dtype=bfloat16",
        "+trainer.limit_test_batches=1", run_dir=tmp_path / "bf16", cache=tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "bf16" / "summary.json").read_text())
    assert 0.0 <= summary["student"]["test_accuracy"] <= 1.0
    assert "precision=bf16-mixed" in (tmp_path / "bf16" / ".hydra" / "overrides.yaml").read_text()


def test_bf16_true_precision_trains_casts_both_models_and_reports(tmp_path):
    """trainer.precision=bf16-true casts the whole module, the teacher too: the fit ends without a false 'teacher
    changed', the report runs the bfloat16 models on the float32 data, and the summary keeps both hashes."""
    from torchvision import models

    torch.save(models.resnet18(num_classes=10).state_dict(), tmp_path / "teacher.pt")  # a float32 teacher
    result = run_cli("student=mobilenet_v3_small", "trainer.precision=bf16-true", "+trainer.limit_test_batches=1",
                     f"teacher.checkpoint={tmp_path / 'teacher.pt'}", run_dir=tmp_path / "bf16", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "bf16" / "summary.json").read_text())
    teacher = summary["teacher"]
    assert teacher["sha256_as_run"] == teacher["sha256_after"] != teacher["sha256"]  # cast to bfloat16, then unchanged
    assert 0.0 <= summary["student"]["test_accuracy"] <= 1.0
    assert {t.dtype for t in student_weights(tmp_path / "bf16").values() if t.is_floating_point()} == {torch.bfloat16}
