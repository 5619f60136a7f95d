"""The command line: config composition (Hydra's compose API) and real runs (subprocess)."""

from __future__ import annotations

import csv
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from distill.cli.config_directory import config_dir

CONF = config_dir()
TINY = [
    "teacher=resnet18",
    "student=mobilenet_v3_small",
    "data.image_size=8",
    "trainer.max_epochs=1",
    "teacher.train.epochs=1",
    "+trainer.limit_train_batches=2", "report.latency=off",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
]


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def run_cli(*args, cache, cwd, env=None):
    environment = {**os.environ, "DISTILL_CACHE_DIR": str(cache), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "distill.run", *args],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=600,
    )


def test_defaults_are_the_readme_example():
    cfg = composed()
    spelled_out = composed("teacher=resnet50", "student=resnet18", "loss=kd", "data=digits", "trainer=default")
    assert OmegaConf.to_yaml(cfg) == OmegaConf.to_yaml(spelled_out)
    assert cfg.teacher.name == "resnet50" and cfg.student.name == "resnet18"
    assert cfg.loss.kd._target_ == "distill.losses.KD" and cfg.loss.ce._target_ == "distill.losses.CrossEntropy"
    assert cfg.data._target_ == "distill.data.DigitsDataModule"


def test_usual_overrides_compose():
    cfg = composed("trainer.max_epochs=3", "data.batch_size=128", "seed=1", "loss.kd.temperature=8")
    assert (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.seed, cfg.loss.kd.temperature) == (3, 128, 1, 8)
    assert composed("trainer.max_epochs=3").lr_scheduler.T_max == 3


def _targets(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                yield path, value
            else:
                yield from _targets(value, f"{path}.{key}")


def _resolve(dotted):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("yaml_file", sorted(str(p.relative_to(CONF)) for p in CONF.rglob("*.yaml")))
def test_every_target_is_a_real_class(yaml_file):
    node = OmegaConf.to_container(OmegaConf.load(CONF / yaml_file))
    for path, target in _targets(node):
        assert callable(_resolve(target)), f"{yaml_file}{path}: {target}"


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "loss").glob("*.yaml")))
def test_every_loss_config_instantiates(option):
    from hydra.utils import instantiate

    from distill.losses import LossTerm

    cfg = composed(f"loss={option}")
    terms = {name: instantiate(term) for name, term in cfg.loss.items()}
    assert terms and all(isinstance(t, LossTerm) for t in terms.values())


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_print_composed_config(tmp_path):
    result = run_cli("--cfg", "job", "trainer.max_epochs=3", cache=tmp_path / "cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "max_epochs: 3" in result.stdout and "name: resnet50" in result.stdout


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_sweep_trains_the_teacher_once_and_writes_each_job(tmp_path):
    cache = tmp_path / "cache"
    sweep_dir = tmp_path / "sweep"
    # temperature 0 is a mistake: that job fails with its one-line error, the others still run
    result = run_cli(
        "-m", "loss.kd.temperature=0,1,4", *TINY, f"hydra.sweep.dir={sweep_dir}", cache=cache, cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr[-3000:]
    log = result.stdout + result.stderr
    # the phase line says where the teacher came from; the library's line saying it again stays in the log file
    assert log.count("trained and cached") == 1 and log.count("] teacher resnet18: cached teacher") == 1
    assert "reused from the cache" not in log
    assert "error: loss.kd.temperature must be a finite number > 0, got 0.0" in result.stderr
    assert "error: 1 of 3 jobs failed" in result.stderr

    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert rows[-1]["job"] == "0" and "temperature must be" in rows[-1]["error"]
    accuracies = [float(r["student_val_accuracy"]) for r in rows[:2]]  # ranked by validation accuracy
    assert accuracies == sorted(accuracies, reverse=True) and rows[0]["best"] == "True"
    assert {r["loss.kd.temperature"] for r in rows[:2]} == {"1", "4"} and rows[-1]["loss.kd.temperature"] == "0"
    assert "**best**" in (sweep_dir / "summary.md").read_text()

    temperatures = []
    for job in ("1", "2"):
        run_dir = sweep_dir / job
        summary = json.loads((run_dir / "summary.json").read_text())
        assert (run_dir / "summary.md").read_text().startswith("# Distillation summary")
        for key in ("teacher", "student"):
            assert 0.0 <= summary[key]["test_accuracy"] <= 1.0
            assert summary[key]["parameters"] > 0
        assert 0.0 <= summary["agreement"] <= 1.0
        assert summary["seconds"] > 0
        assert Path(summary["student"]["checkpoint"]).is_file()
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
        assert (run_dir / "logs" / "metrics.csv").is_file()
        report = json.loads((run_dir / "report.json").read_text())
        assert [row["role"] for row in report["rows"]] == ["teacher", "student"]
        assert report["rows"][1]["accuracy"] == summary["student"]["test_accuracy"]
        for figure in ("learning_curves.png", "reliability.png"):
            assert (run_dir / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        temperatures.append(summary["loss"]["kd"])

        # the student weights load with plain torch into the same torchvision model
        from torchvision import models

        student = models.get_model("mobilenet_v3_small", num_classes=10)
        student.load_state_dict(torch.load(summary["student"]["weights"], weights_only=True))
        assert student.eval()(torch.randn(2, 3, 8, 8)).shape == (2, 10)
        # and the checkpoint holds the student alone, not a copy of the teacher
        ckpt = torch.load(summary["student"]["checkpoint"], map_location="cpu", weights_only=True)
        assert all(k.startswith(("student.", "loss_terms.")) for k in ckpt["state_dict"])
        assert ckpt["distill"]["teacher_sha256"] == summary["teacher"]["sha256"]
    assert "temperature=1.0" in temperatures[0] and "temperature=4.0" in temperatures[1]

    # a teacher given as a checkpoint: the cached teacher file itself
    teacher_file = next((cache / "teachers").glob("resnet18-*.pt"))
    # and, with baseline=true, the student trained alone (cached like a teacher) in the report
    result = run_cli(*TINY, f"teacher.checkpoint={teacher_file}", "baseline=true", "log_grad_norms=true",
                     "trainer.log_every_n_steps=1", "diagnostics.gradients.every_n_steps=1",
                     f"hydra.run.dir={tmp_path / 'given'}", cache=tmp_path / "other-cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "given" / "summary.json").read_text())
    assert summary["teacher"]["origin"] == "checkpoint"
    assert not (tmp_path / "other-cache" / "teachers").exists()
    assert len(list((tmp_path / "other-cache" / "baselines").glob("mobilenet_v3_small-*.pt"))) == 1
    report = json.loads((tmp_path / "given" / "report.json").read_text())
    assert [row["role"] for row in report["rows"]] == ["teacher", "student", "baseline"]
    assert 0.0 <= summary["baseline"]["test_accuracy"] <= 1.0
    assert "Distillation report" in result.stdout
    header = (tmp_path / "given" / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "train/grad_norm/kd" in header and "train/grad_norm/ce" in header
    # the gradient diagnostics, logged every step here, are drawn next to the learning curves
    assert "train/grad_var/kd" in header and "train/grad_cos/kd__ce" in header
    assert summary["report"]["gradient_statistics"] == str(tmp_path / "given" / "gradient_statistics.png")
    assert (tmp_path / "given" / "gradient_statistics.png").stat().st_size > 0
    assert str(tmp_path / "given" / "gradient_statistics.png") in result.stdout  # the console's pointer to the figures


@pytest.mark.parametrize(  # one case by default, the others in the slow suite (a command line each)
    "args, message",
    [
        (["teacher=resnt50"], "unknown teacher 'resnt50' (did you mean resnet50"),
        pytest.param(["teacher.name=resnet5"], "unknown model 'resnet5' (did you mean resnet56, resnet50", marks=pytest.mark.slow),
        pytest.param(["loss=kdd"], "unknown loss 'kdd' (did you mean kd", marks=pytest.mark.slow),
        pytest.param(["student.name=mobilenet_v9"], "unknown model 'mobilenet_v9'", marks=pytest.mark.slow),
        pytest.param(["loss.kd.temperature=0"], "temperature must be a finite number > 0, got 0.0", marks=pytest.mark.slow),
        pytest.param(["loss.ce.weight=-1"], "weight must be a finite number >= 0, got -1.0", marks=pytest.mark.slow),
        pytest.param(["teacher.checkpoint=/no/such/teacher.pt"], "checkpoint not found: /no/such/teacher.pt", marks=pytest.mark.slow),
        pytest.param(["data.batch_size=0"], "data.batch_size must be a whole number >= 1, got 0", marks=pytest.mark.slow),
    ],
)
def test_user_errors_are_one_clear_line(tmp_path, args, message):
    # on the tiny setting, so that an error that is not raised costs seconds, not minutes
    result = run_cli(*TINY, *args, f"hydra.run.dir={tmp_path / 'run'}", cache=tmp_path / "cache", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]


def test_torchvision_name_as_group_option_is_accepted():
    from distill.cli.overrides import check_group_overrides

    argv = ["teacher=efficientnet_b3", "seed=1", "loss=kd,ce", "trainer=default"]
    assert check_group_overrides(argv, CONF) == argv


def test_a_schedule_in_the_config_becomes_the_terms_weight_schedule():
    from distill.losses.schedules import LinearWarmup
    from distill.cli.training import loss_term

    cfg = composed("experiment=kd_warmup")
    term = loss_term(cfg.loss.kd)
    assert isinstance(term.schedule, LinearWarmup) and term.schedule.epochs == 3
    assert term.weight_at(0) == pytest.approx(0.9 / 3)
    assert "schedule" in cfg.loss.kd  # the config itself is left as it was


def test_the_best_checkpoint_is_loaded_into_the_student_by_a_named_step(tmp_path, make_cnn, caplog):
    import logging

    import torch

    from distill import DistillationModule
    from distill.losses import KD
    from distill.run import load_best_student

    torch.manual_seed(0)
    module = DistillationModule(make_cnn(), make_cnn(), {"kd": KD()})
    best = {
        name: torch.randn_like(value) if value.is_floating_point() else value + 3  # batch-norm counters
        for name, value in module.state_dict().items()
    }
    torch.save({"state_dict": best, "epoch": 3}, tmp_path / "best.ckpt")
    last = {name: value.clone() for name, value in module.student.state_dict().items()}

    load_best_student(module, "")  # no best checkpoint: the last step's student stays
    assert all(torch.equal(module.student.state_dict()[k], v) for k, v in last.items())
    with caplog.at_level(logging.INFO, logger="distill"):
        load_best_student(module, str(tmp_path / "best.ckpt"))
    assert all(torch.equal(module.state_dict()[k], v) for k, v in best.items())
    assert f"Loaded the best student from {tmp_path / 'best.ckpt'}" in caplog.text
