"""python -m distill.evaluate on a real tiny run: the command line (subprocess) and its job (in-process)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from distill.errors import DistillError
from distill.evaluate import evaluate_saved
from distill.losses import StepOutputs
from distill.models import build_model, load_weights
from distill.cli.config_directory import config_dir

CONF = config_dir()


@pytest.fixture(scope="module")
def tiny_run(tiny_run_files):
    """The session's tiny run (tests/conftest.py), with its cached teacher and report."""
    (teacher,) = (tiny_run_files.cache / "teachers").glob("resnet18-*.pt")
    report = json.loads((tiny_run_files.dir / "report.json").read_text())
    return SimpleNamespace(**vars(tiny_run_files), teacher=teacher, report=report)


def run_cli(*args, cwd, cache, latency="off"):
    """``python -m distill.evaluate``; CPU latency off unless a test measures it (it dominates the time)."""
    return subprocess.run(
        [sys.executable, "-m", "distill.evaluate", *args, f"report.latency={latency}"],
        cwd=cwd, env={**os.environ, "DISTILL_CACHE_DIR": str(cache)}, capture_output=True, text=True, timeout=600, check=False,
    )


def job(*overrides, out_dir):
    overrides = [*overrides, "report.latency=off"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("evaluate", overrides=overrides)
    return evaluate_saved(cfg, overrides, out_dir)


def report_row(tiny_run, role):
    return next(row for row in tiny_run.report["rows"] if row["role"] == role)


def assert_same_numbers(row, expected):
    for key in ("accuracy", "top5_accuracy", "agreement", "ece", "nll", "parameters", "size_mb"):
        assert row[key] == pytest.approx(expected[key]), key


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_cli_measures_the_run_and_the_per_sample_means_are_the_terms_values(tiny_run, tmp_path):
    result = run_cli(f"checkpoint={tiny_run.best}", "per_sample=true", f"hydra.run.dir={tmp_path / 'job'}",
                     cwd=tmp_path, cache=tiny_run.cache, latency="full")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mobilenet_v3_small" in result.stdout and "evaluation written to" in result.stdout
    written = json.loads((tmp_path / "job" / "evaluation.json").read_text())  # out_dir: the job's directory
    for role in ("teacher", "student"):
        assert_same_numbers(next(r for r in written["rows"] if r["role"] == role), report_row(tiny_run, role))
    assert written["model"]["latency_b1_ms"] > 0 and written["model"]["latency_b64_ms"] > 0
    assert written["meta"]["teacher_source"].startswith("cached teacher")
    assert (tmp_path / "job" / "evaluation.md").read_text().startswith("# Evaluation")

    with open(tmp_path / "job" / "per_sample.csv") as handle:
        rows = list(csv.DictReader(handle))
    # the same on the whole test set, computed here from the files: weights, cached teacher, run config
    run_cfg = OmegaConf.load(tiny_run.dir / ".hydra" / "config.yaml")
    data = instantiate(run_cfg.data)
    data.setup()
    x, y = data.splits["test"].inputs, data.splits["test"].labels
    student = load_weights(build_model("mobilenet_v3_small", 10), tiny_run.best).eval()
    teacher = load_weights(build_model("resnet18", 10), tiny_run.teacher).eval()
    with torch.no_grad():
        outputs = StepOutputs(student=student(x), teacher=teacher(x), labels=y)
    assert [int(r["index"]) for r in rows] == list(range(len(y)))
    assert [int(r["label"]) for r in rows] == y.tolist()
    for name in ("kd", "ce"):
        column = torch.tensor([float(r[f"loss/{name}"]) for r in rows], dtype=torch.float64)
        expected = instantiate(run_cfg.loss[name])(outputs).item()
        assert column.mean().item() == pytest.approx(expected, rel=1e-4, abs=1e-7), name
        assert written["losses"][name] == pytest.approx(expected, rel=1e-4, abs=1e-7), name


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_cli_error_is_one_clear_line(tiny_run, tmp_path):
    loose = tmp_path / "loose" / "student.pt"
    loose.parent.mkdir()
    shutil.copy(tiny_run.dir / "student.pt", loose)
    result = run_cli(f"checkpoint={loose}", f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path, cache=tiny_run.cache)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [result.stderr.strip().splitlines()[-1]]
    assert "is not inside a run directory" in errors[0] and "give model=NAME" in errors[0]


def test_student_pt_gives_the_runs_numbers(tiny_run, tmp_path):
    result = job(f"checkpoint={tiny_run.dir / 'student.pt'}", f"cache_dir={tiny_run.cache}", out_dir=tmp_path)
    assert_same_numbers(result["model"], report_row(tiny_run, "student"))
    assert result["meta"]["run_dir"] == str(tiny_run.dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluation.json", "evaluation.md", "reliability.png"]


def test_any_file_with_model_and_teacher_given(tiny_run, tmp_path):
    loose = tmp_path / "student.pt"
    shutil.copy(tiny_run.dir / "student.pt", loose)
    student = job(
        f"checkpoint={loose}", "model=mobilenet_v3_small", "data.image_size=8",
        "teacher.name=resnet18", f"teacher.checkpoint={tiny_run.teacher}", out_dir=tmp_path / "s",
    )
    assert_same_numbers(student["model"], report_row(tiny_run, "student"))
    teacher = job(f"checkpoint={tiny_run.teacher}", "model=resnet18", "role=teacher", "data.image_size=8",
                  "num_classes=10", out_dir=tmp_path / "t")
    assert [row["role"] for row in teacher["rows"]] == ["teacher"]
    assert teacher["model"]["accuracy"] == pytest.approx(report_row(tiny_run, "teacher")["accuracy"])


@pytest.fixture
def other_teacher_run(tiny_run, tmp_path):
    """A copy of the run whose summary records another teacher."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.dir / ".hydra", copy / ".hydra")
    shutil.copy(tiny_run.dir / "student.pt", copy / "student.pt")
    (copy / "summary.json").write_text(json.dumps({"teacher": {"sha256": "0" * 64}}))
    return copy


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["checkpoint={tmp}/missing.ckpt"], "checkpoint not found"),
        (["checkpoint={tmp}/bad.pt", "model=mobilenet_v3_small"], "cannot be read: it is truncated, corrupt"),
        (["checkpoint={run}/student.pt", "model=resnet18"], "does not fit ResNet"),
        (["checkpoint={run}/student.pt", "cache_dir={tmp}/empty"], "is not in the cache.*train_teacher=true"),
        (["checkpoint={teacher}", "model=resnet18", "role=teacher", "per_sample=true", "data.image_size=8"],
         "not available with role=teacher"),
        (["checkpoint={tmp}/bad.pt", "role=baseline"], "role must be one of student, teacher"),
        (["checkpoint={copy}/student.pt"], "not the one the run distilled from.*teacher.checkpoint=PATH"),
    ],
)
def test_bad_input_is_a_clear_error(tiny_run, other_teacher_run, tmp_path, overrides, message):
    (tmp_path / "bad.pt").write_bytes((tiny_run.dir / "student.pt").read_bytes()[:1000])  # truncated
    places = {"tmp": tmp_path, "run": tiny_run.dir, "teacher": tiny_run.teacher, "copy": other_teacher_run}
    overrides = [o.format(**places) for o in overrides]
    if not any(o.startswith("cache_dir=") for o in overrides):
        overrides.append(f"cache_dir={tiny_run.cache}")
    with pytest.raises(DistillError, match=message):
        job(*overrides, out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "evaluation.json").exists()


def test_a_student_outside_a_run_needs_its_teacher(tiny_run, tmp_path):
    loose = tmp_path / "student.pt"
    shutil.copy(tiny_run.dir / "student.pt", loose)
    with pytest.raises(DistillError, match="its teacher is unknown; give teacher.name=NAME"):
        job(f"checkpoint={loose}", "model=mobilenet_v3_small", "data.image_size=8", out_dir=tmp_path)


@pytest.mark.filterwarnings("ignore:The number of training batches")
def test_train_teacher_trains_the_runs_teacher_again_when_the_cache_lacks_it(tiny_run, tmp_path):
    result = job(f"checkpoint={tiny_run.best}", "train_teacher=true", f"cache_dir={tmp_path / 'cache'}",
                 "data.batch_size=128", out_dir=tmp_path / "out")
    (trained,) = (tmp_path / "cache" / "teachers").glob("resnet18-*.pt")
    assert trained.name == tiny_run.teacher.name  # the run's settings: the same cache key
    assert result["meta"]["teacher_source"].startswith("teacher trained by distill")
    assert result["model"]["agreement"] is not None


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_a_run_with_several_teachers_is_evaluated_against_its_ensemble(tmp_path, tiny_overrides):
    from torchvision import models

    for name in ("a", "b"):
        torch.manual_seed(ord(name))
        torch.save(models.resnet18(num_classes=10).state_dict(), tmp_path / f"{name}.pt")
    members = (
        f"+teacher.members={{a: {{name: resnet18, checkpoint: {tmp_path / 'a.pt'}}}, "
        f"b: {{name: resnet18, checkpoint: {tmp_path / 'b.pt'}}}}}"
    )
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache")}
    made = subprocess.run(
        [sys.executable, "-m", "distill.run", *tiny_overrides, "teacher=ensemble", members, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    result = run_cli(f"checkpoint={tmp_path / 'run' / 'student.pt'}", f"hydra.run.dir={tmp_path / 'job'}",
                     cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / "job" / "evaluation.json").read_text())
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    # the teacher rebuilt from the run's config is the run's ensemble: the same agreement as the run's report
    student_row = next(r for r in report["rows"] if r["role"] == "student")
    assert written["model"]["agreement"] == pytest.approx(student_row["agreement"])


def _same_row_numbers(row, expected):
    for key in ("accuracy", "top5_accuracy", "agreement", "ece", "nll", "parameters", "size_mb"):
        if expected[key] is None:
            assert row[key] is None, key
        else:
            assert row[key] == pytest.approx(expected[key]), key


@pytest.fixture(scope="module")
def binary_heads_run(tmp_path_factory):
    """A tiny ``experiment=binary_heads`` run: four one-output teachers as one, a four-head student, yes/no targets."""
    root = tmp_path_factory.mktemp("binary-heads-run")
    members = [f"teacher.members.{m}.name=resnet8" for m in ("one_vs_zero", "two_vs_zero", "three_vs_zero", "four_vs_zero")]
    made = subprocess.run(
        [sys.executable, "-m", "distill.run", "experiment=binary_heads", "student=resnet8", *members,
         "data.image_size=8", "trainer.max_epochs=1", "teacher.train.epochs=1", "+trainer.limit_train_batches=2", "report.latency=off",
         "+trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", f"hydra.run.dir={root / 'run'}"],
        cwd=root, env={**os.environ, "DISTILL_CACHE_DIR": str(root / "cache")}, capture_output=True, text=True,
        timeout=600, check=False,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    return SimpleNamespace(dir=root / "run", cache=root / "cache", report=json.loads((root / "run" / "report.json").read_text()))


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_evaluate_agrees_with_the_runs_own_report_on_a_normal_and_a_yes_no_heads_run(tiny_run, binary_heads_run, tmp_path):
    for name, run in (("normal", tiny_run), ("binary_heads", binary_heads_run)):
        result = run_cli(f"checkpoint={run.dir / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={tmp_path / name}",
                         cwd=tmp_path, cache=run.cache)
        assert result.returncode == 0, (name, result.stderr[-3000:])
        written = json.loads((tmp_path / name / "evaluation.json").read_text())
        for role in ("teacher", "student"):
            expected = next(r for r in run.report["rows"] if r["role"] == role)
            _same_row_numbers(next(r for r in written["rows"] if r["role"] == role), expected)
    heads = {r["role"]: r for r in binary_heads_run.report["rows"]}
    # yes/no targets: no single-label numbers, and agreement is the share of equal decisions
    assert heads["student"]["accuracy"] is None and heads["teacher"]["accuracy"] is None
    assert 0.0 <= heads["student"]["agreement"] <= 1.0
