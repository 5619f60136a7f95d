"""The Trainer a run builds from its config: strategies Lightning would refuse inside fit are one line first."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from distill.cli.training import make_trainer
from distill.errors import DistillError
from distill.run import config_dir


@pytest.fixture
def config():
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield lambda *overrides: compose("config", overrides=list(overrides))


def test_deepspeed_off_cuda_is_one_line_before_fit(config):
    pytest.importorskip("deepspeed", reason="pip install -e '.[deepspeed]'")
    cfg = config("trainer=deepspeed", "trainer.accelerator=cpu", "trainer.precision=32", "trainer.devices=1")
    with pytest.raises(DistillError, match=r"^the DeepSpeed strategy runs on CUDA GPUs only \(Lightning's rule\), and "
                                           r"this run's accelerator is cpu; on CPU use trainer=ddp trainer.accelerator=cpu$"):
        make_trainer(cfg, logger=False)


def test_deepspeed_without_the_package_names_the_extra(config, monkeypatch):
    import lightning.pytorch.strategies.deepspeed as lightning_deepspeed

    monkeypatch.setattr(lightning_deepspeed, "_DEEPSPEED_AVAILABLE", False)  # as without the package
    cfg = config("trainer=deepspeed", "trainer.accelerator=cpu", "trainer.devices=1")
    with pytest.raises(DistillError, match=r'^the DeepSpeed strategy needs the deepspeed package; pip install -e "\.\[deepspeed\]"$'):
        make_trainer(cfg, logger=False)


def test_the_deepspeed_config_composes_zero_3_on_gpus_in_bf16(config):
    cfg = config("trainer=deepspeed")
    assert cfg.trainer.strategy._target_ == "lightning.pytorch.strategies.DeepSpeedStrategy"
    assert cfg.trainer.strategy.stage == 3 and cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"


def test_other_strategies_pass(config):
    trainer = make_trainer(config("trainer.accelerator=cpu"), logger=False)
    assert type(trainer.strategy).__name__ == "SingleDeviceStrategy"
