"""conf/loss/{crd,review_kd,vid,ft,nst,cc,ab,fsp}.yaml build their terms and train on the default pair."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from distill import DistillationModule, losses
from distill.models import build_model
from distill.run import config_dir

CONFIGS = {
    "ab": losses.AB,
    "cc": losses.CC,
    "crd": losses.CRD,
    "fsp": losses.FSP,
    "ft": losses.FT,
    "nst": losses.NST,
    "review_kd": losses.ReviewKD,
    "vid": losses.VID,
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_trains_resnet18_from_resnet50(name):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"loss={name}"])
    terms = {key: instantiate(node) for key, node in cfg.loss.items()}
    assert isinstance(terms[name], CONFIGS[name])
    assert isinstance(terms["ce"], losses.CrossEntropy) and terms["ce"].weight == 1.0
    assert (cfg.teacher.name, cfg.student.name) == ("resnet50", "resnet18")

    torch.manual_seed(0)
    student, teacher = build_model(cfg.student.name, 10), build_model(cfg.teacher.name, 10)
    module = DistillationModule(student, teacher, terms)
    batch = (torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)), torch.arange(4))
    module.build(batch)
    loss = module.training_step(batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
