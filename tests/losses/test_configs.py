"""Every config in conf/loss/ builds its loss terms."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from distill import losses
from distill.losses import LossTerm

CONF_LOSS = Path(__file__).resolve().parents[2] / "conf" / "loss"

NEW_CONFIGS = {
    "reverse_kl": losses.ReverseKL,
    "jsd": losses.JSD,
    "tvd": losses.TVD,
    "soft_target_ce": losses.SoftTargetCE,
    "bce_kd": losses.BCEKD,
    "dkd": losses.DKD,
    "dist": losses.DIST,
    "cosine_embedding": losses.CosineEmbedding,
    "masked_bce": losses.MaskedBCE,
}


@pytest.mark.parametrize("name", sorted(NEW_CONFIGS))
def test_config_builds_its_term(name):
    cfg = OmegaConf.load(CONF_LOSS / f"{name}.yaml")
    terms = {key: instantiate(value) for key, value in cfg.items()}
    assert isinstance(terms[name], NEW_CONFIGS[name])
    assert all(isinstance(term, LossTerm) for term in terms.values())
