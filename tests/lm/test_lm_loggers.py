"""``experiment=lm`` with ``logger=tensorboard|mlflow|wandb``: each records the LM run's per-term losses and metrics."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lm.test_lm_run import TINY_LM

pytestmark = pytest.mark.slow  # real training runs: `pytest -m slow`, which CI runs

#: what every logger must have recorded: the total and each term in training and validation, and a metric
KEYS = ("train/loss", "train/loss/kd", "train/loss/ce", "val/loss/kd", "val/acc")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: the teacher LM is trained by the first run and reused by the others."""
    return tmp_path_factory.mktemp("lm-logger-cache")


def _run(logger: str, run: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY_LM, f"logger={logger}", "trainer.log_every_n_steps=1",
         f"cache_dir={cache}", f"hydra.run.dir={run}"],
        cwd=run.parent, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"},
    )


def _tensorboard_keys(run: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return set(events.Tags()["scalars"])


def _mlflow_keys(run: Path) -> set[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("distill").experiment_id])
    return set(found.data.metrics)


def _wandb_keys(run: Path) -> set[str]:
    # an offline run is a record log of protobuf messages; each logged key is stored as its UTF-8 text
    (records,) = run.glob("wandb/offline-run-*/run-*.wandb")
    data = records.read_bytes()
    return {key for key in KEYS if key.encode() in data}


READERS = {"tensorboard": _tensorboard_keys, "mlflow": _mlflow_keys, "wandb": _wandb_keys}


@pytest.mark.parametrize("logger", sorted(READERS))
def test_the_logger_records_each_loss_term_of_the_lm_run(logger, tmp_path, cache):
    if importlib.util.find_spec(logger) is None:
        pytest.skip(f"{logger} is not installed (pip install -e '.[dev]' installs it)")
    run = tmp_path / "run"
    result = _run(logger, run, cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "report_lm.json").is_file()
    recorded = READERS[logger](run)
    assert set(KEYS) <= recorded, sorted(recorded)
