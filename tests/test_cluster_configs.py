"""Cluster and sweep configs: SLURM launcher, Lightning's SLURM environment, FSDP, Optuna sweeper."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from distill.run import config_dir


def composed(*overrides, hydra_config=False):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_config)


def test_slurm_launcher_is_selected_and_sized_from_the_trainer():
    cfg = composed("hydra/launcher=slurm", "trainer=slurm", "trainer.num_nodes=2", "trainer.devices=4", hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.accelerator == "gpu"


SLURM_CHECK = """
import json
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment
from distill.run import config_dir

with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
    cfg = compose("config", overrides=["trainer=slurm", "trainer.accelerator=cpu", "trainer.devices=2"])
trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
env = trainer._accelerator_connector.cluster_environment
print(json.dumps([type(env).__name__, env.global_rank(), env.world_size(), env.main_address]))
"""


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_lightning_takes_ranks_from_slurm(tmp_path):
    # in a process of its own: a Trainer built as rank 1 sets Lightning's process-wide rank, which
    # would silence rank-zero logging (and upset DDP runs) in the rest of the test session
    slurm = {
        "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
        "SLURM_NODEID": "0", "SLURM_JOB_NAME": "distill", "SLURM_NODELIST": "node01", "SLURM_JOB_ID": "1234",
    }
    result = subprocess.run(
        [sys.executable, "-c", SLURM_CHECK], cwd=tmp_path, env={**os.environ, **slurm},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["SLURMEnvironment", 1, 2, "node01"]


def test_fsdp_config_builds_lightnings_fsdp_strategy():
    from lightning.pytorch.strategies import FSDPStrategy

    cfg = composed("trainer=fsdp", "trainer.devices=8")
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDPStrategy)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.devices == 8


def test_optuna_sweeper_config_composes():
    cfg = composed("hparams_search=kd_optuna", hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "maximize" and cfg.optimized_metric == "student.best_val_accuracy"
    assert set(sweeper.params) == {"loss.kd.temperature", "loss.kd.weight", "loss.ce.weight"}


@pytest.mark.slow  # two real runs in an Optuna sweep
def test_optuna_runs_two_trials_on_validation_accuracy(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable, "-m", "distill.run", "-m", "hparams_search=kd_optuna", "hydra.sweeper.n_trials=2",
            "teacher=resnet18", "student=mobilenet_v3_small", "data.image_size=8", "trainer.max_epochs=1",
            "teacher.train.epochs=1", "+trainer.limit_train_batches=2", "report.latency=off", "+trainer.limit_val_batches=2",
            "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep_dir}",
        ],
        env={**os.environ, "DISTILL_CACHE_DIR": str(tmp_path / "cache")}, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # the sweeper's result file names the best trial's parameters and its validation accuracy
    optimization = (sweep_dir / "optimization_results.yaml").read_text()
    assert "best_params" in optimization and "loss.kd.temperature" in optimization
    values = [json.loads((sweep_dir / str(n) / "summary.json").read_text())["student"]["best_val_accuracy"] for n in (0, 1)]
    assert all(0.0 <= v <= 1.0 for v in values)
    best_value = float(optimization.split("best_value:")[1].split()[0])
    assert best_value == pytest.approx(max(values))
