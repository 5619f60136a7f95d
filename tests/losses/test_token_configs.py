"""Every conf/loss/lm_*.yaml builds token-level terms that compute on an LM batch."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from distill import losses
from distill.losses import StepOutputs
from distill.losses.token_loss_term import TokenLossTerm

CONF_LOSS = Path(__file__).resolve().parents[2] / "conf" / "loss"

LM_CONFIGS = {
    "lm_kd": {"kd": losses.TokenKL, "ce": losses.TokenCrossEntropy},
    "lm_reverse_kl": {"reverse_kl": losses.TokenReverseKL, "ce": losses.TokenCrossEntropy},
    "lm_jsd": {"jsd": losses.TokenJSD, "ce": losses.TokenCrossEntropy},
    "lm_tvd": {"tvd": losses.TokenTVD, "ce": losses.TokenCrossEntropy},
    "lm_skew_kl": {"skew_kl": losses.TokenSkewKL, "ce": losses.TokenCrossEntropy},
    "lm_ce": {"ce": losses.TokenCrossEntropy},
    "lm_hidden_states": {"kd": losses.TokenKL, "hidden": losses.TokenHiddenStates, "ce": losses.TokenCrossEntropy},
    "lm_attention": {"kd": losses.TokenKL, "attention": losses.TokenAttention, "ce": losses.TokenCrossEntropy},
}


#: across tokenizers: the terms read an alignment (tests/losses/test_token_cross_tokenizer.py computes them)
CROSS_TOKENIZER_CONFIGS = {
    "lm_uld": {"uld": losses.TokenULD, "exact": losses.TokenExactMatchKL, "ce": losses.TokenCrossEntropy},
}


def test_every_lm_config_is_listed():
    assert sorted(p.stem for p in CONF_LOSS.glob("lm_*.yaml")) == sorted({**LM_CONFIGS, **CROSS_TOKENIZER_CONFIGS})


@pytest.mark.parametrize("name", sorted(CROSS_TOKENIZER_CONFIGS))
def test_cross_tokenizer_config_builds_its_terms(name):
    text = (CONF_LOSS / f"{name}.yaml").read_text()
    assert text.startswith("# ") and any(str(year) in text.splitlines()[0] for year in range(2003, 2027))
    terms = {key: instantiate(value) for key, value in OmegaConf.load(CONF_LOSS / f"{name}.yaml").items()}
    assert {key: type(term) for key, term in terms.items()} == CROSS_TOKENIZER_CONFIGS[name]


@pytest.mark.parametrize("name", sorted(LM_CONFIGS))
def test_lm_config_builds_its_terms_and_they_compute(name):
    text = (CONF_LOSS / f"{name}.yaml").read_text()
    assert text.startswith("# ") and any(str(year) in text.splitlines()[0] for year in range(2003, 2027))
    terms = {key: instantiate(value) for key, value in OmegaConf.load(CONF_LOSS / f"{name}.yaml").items()}
    assert {key: type(term) for key, term in terms.items()} == LM_CONFIGS[name]
    terms = {key: term for key, term in terms.items() if not term.student_layers}  # the others read model features
    student = torch.randn(2, 5, 7, requires_grad=True)
    labels = torch.randint(0, 7, (2, 5))
    labels[:, :2] = -100
    outputs = StepOutputs(student=student, teacher=torch.randn(2, 5, 7), labels=labels)
    total = sum(term.weight * term(outputs) for term in terms.values())
    total.backward()
    assert torch.isfinite(total) and student.grad.abs().sum() > 0
    assert terms and all(isinstance(term, TokenLossTerm) for term in terms.values())


def test_top_k_can_be_switched_on_from_the_command_line_style_override():
    cfg = OmegaConf.load(CONF_LOSS / "lm_kd.yaml")
    cfg.merge_with_dotlist(["kd.top_k=3"])
    assert instantiate(cfg.kd).top_k == 3
