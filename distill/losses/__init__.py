"""Loss terms: each is one weighted part of the distillation objective.

Pure functions live in :mod:`distill.losses.functional`; the classes here add a
weight and a config entry (``conf/loss/``).
"""

# relation, contrastive and review terms (trained heads, connectors, memory banks)
from distill.losses.ab import AB

# feature-based terms (they read intermediate layers)
from distill.losses.activation_penalty import ActivationPenalty
from distill.losses.attention_transfer import AttentionTransfer
from distill.losses.base import LossTerm, StepOutputs
from distill.losses.bce_kd import BCEKD
from distill.losses.cc import CC
from distill.losses.cosine_embedding import CosineEmbedding
from distill.losses.crd import CRD
from distill.losses.cross_entropy import CrossEntropy
from distill.losses.dist import DIST
from distill.losses.dkd import DKD
from distill.losses.fitnet import FitNet
from distill.losses.fsp import FSP
from distill.losses.ft import FT
from distill.losses.jsd import JSD
from distill.losses.kd import KD
from distill.losses.logit_mse import LogitMSE
from distill.losses.masked_bce import MaskedBCE
from distill.losses.nst import NST
from distill.losses.pkt import PKT
from distill.losses.pseudo_label import PseudoLabel
from distill.losses.reverse_kl import ReverseKL
from distill.losses.review_kd import ReviewKD
from distill.losses.rkd import RKD
from distill.losses.similarity_preserving import SimilarityPreserving
from distill.losses.slice_outputs import SliceOutputs
from distill.losses.soft_target_ce import SoftTargetCE
from distill.losses.tvd import TVD
from distill.losses.vid import VID

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
    "PseudoLabel",
    "ReverseKL",
    "SliceOutputs",
    "SoftTargetCE",
    "StepOutputs",
    # feature-based terms
    "PKT",
    "RKD",
    "ActivationPenalty",
    "AttentionTransfer",
    "FitNet",
    "SimilarityPreserving",
    # relation, contrastive and review terms
    "AB",
    "CC",
    "CRD",
    "FSP",
    "FT",
    "NST",
    "VID",
    "ReviewKD",
]

# token-level terms for causal language models
from distill.losses.token_attention import TokenAttention  # noqa: E402
from distill.losses.token_cross_entropy import TokenCrossEntropy  # noqa: E402
from distill.losses.token_hidden_states import TokenHiddenStates  # noqa: E402
from distill.losses.token_jsd import TokenJSD  # noqa: E402
from distill.losses.token_kl import TokenKL  # noqa: E402
from distill.losses.token_reverse_kl import TokenReverseKL  # noqa: E402
from distill.losses.token_skew_kl import TokenSkewKL  # noqa: E402
from distill.losses.token_tvd import TokenTVD  # noqa: E402

__all__ += [
    "TokenAttention",
    "TokenCrossEntropy",
    "TokenHiddenStates",
    "TokenJSD",
    "TokenKL",
    "TokenReverseKL",
    "TokenSkewKL",
    "TokenTVD",
]

# token-level terms between models with different tokenizers (at aligned positions)
from distill.losses.token_exact_match import TokenExactMatchKL  # noqa: E402
from distill.losses.token_uld import TokenULD  # noqa: E402

__all__ += ["TokenExactMatchKL", "TokenULD"]
