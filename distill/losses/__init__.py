"""Loss terms: each is one weighted part of the distillation objective.

Pure functions live in :mod:`distill.losses.functional`; the classes here add a
weight and a config entry (``conf/loss/``).
"""

from distill.losses.base import LossTerm, StepOutputs
from distill.losses.bce_kd import BCEKD
from distill.losses.cosine_embedding import CosineEmbedding
from distill.losses.cross_entropy import CrossEntropy
from distill.losses.dist import DIST
from distill.losses.dkd import DKD
from distill.losses.jsd import JSD
from distill.losses.kd import KD
from distill.losses.logit_mse import LogitMSE
from distill.losses.masked_bce import MaskedBCE
from distill.losses.reverse_kl import ReverseKL
from distill.losses.soft_target_ce import SoftTargetCE
from distill.losses.tvd import TVD

__all__ = [
    "BCEKD",
    "DIST",
    "DKD",
    "JSD",
    "KD",
    "TVD",
    "CosineEmbedding",
    "CrossEntropy",
    "LogitMSE",
    "LossTerm",
    "MaskedBCE",
    "ReverseKL",
    "SoftTargetCE",
    "StepOutputs",
]
