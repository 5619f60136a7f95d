"""logger=csv|tensorboard|mlflow|wandb: each works when its package is installed, else says how to get it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest


TINY = [
    "teacher=resnet18", "student=mobilenet_v3_small", "data.image_size=8", "trainer.max_epochs=1",
    "teacher.train.epochs=1", "+trainer.limit_train_batches=2", "report.latency=off", "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
]
#: logger option -> (the package it needs, a file or folder it writes in the run directory)
LOGGERS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow.db"),
    "wandb": ("wandb", "wandb"),
}


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
@pytest.mark.parametrize("name", sorted(LOGGERS))
def test_optional_logger(name, tmp_path):
    package, written = LOGGERS[name]
    run_dir = tmp_path / "run"
    env = {**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache"), "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY, f"logger={name}", f"hydra.run.dir={run_dir}"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    if importlib.util.find_spec(package) is None:
        assert result.returncode == 2
        assert "needs a package that is not installed" in result.stderr
        assert f"; pip install {package} or use logger=csv" in result.stderr  # the one package it needs
        assert not (tmp_path / "cache").exists() and "[1/" not in result.stdout  # before the teacher trained
        assert "Traceback" not in result.stderr
    else:
        assert result.returncode == 0, result.stderr[-2000:]
        assert (run_dir / written).exists()
        assert (run_dir / "report.json").is_file()
        assert "\x1b[" not in result.stdout + result.stderr  # no colour codes where no terminal is
        assert result.stdout.rstrip().splitlines()[-1].startswith("student weights: ")  # the pointers end the run
        if name == "wandb":  # quiet: one line saying where the offline run is and how to upload it, before the report
            line = next(x for x in result.stdout.splitlines() if x.startswith("Weights & Biases offline run: "))
            assert str(run_dir / "wandb" / "offline-run-") in line and "wandb sync " in line
            assert result.stdout.index(line) < result.stdout.index("report: ")
            assert "Tracking run with wandb" not in result.stderr and "Run history" not in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("comet_ml") is not None, reason="comet_ml is installed")
def test_a_missing_logger_package_fails_before_the_teacher_trains(tmp_path):
    """A logger whose package is missing (Comet's; the dev install has the other three): one line, no teacher trained."""
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY, "logger=csv", "logger._target_=lightning.pytorch.loggers.CometLogger",
         f"hydra.run.dir={tmp_path / 'run'}"],
        env={**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache")}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the logger CometLogger needs a package that is not installed") and "comet" in last
    assert last.endswith("or use logger=csv") and "Traceback" not in result.stderr
    assert "[1/3]" not in result.stdout and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("target, package", [
    ("TensorBoardLogger", "tensorboard"), ("MLFlowLogger", "mlflow"), ("WandbLogger", "wandb"),
])
def test_the_install_hint_names_the_one_package_the_logger_needs(monkeypatch, target, package):
    from hydra.errors import InstantiationException
    from omegaconf import OmegaConf

    from distill.cli import training
    from distill.errors import DistillError

    def missing(*args, **kwargs):
        raise InstantiationException("cannot build") from ModuleNotFoundError(f"No module named '{package}'")

    monkeypatch.setattr(training, "instantiate", missing)
    cfg = OmegaConf.create({"logger": {"_target_": f"lightning.pytorch.loggers.{target}"}})
    with pytest.raises(DistillError) as raised:
        training.make_logger(cfg, resumed=False)
    assert str(raised.value) == (
        f"the logger {target} needs a package that is not installed (No module named '{package}'); "
        f"pip install {package} or use logger=csv"
    )
