"""Distillation losses as pure functions, in the style of ``torch.nn.functional``.

Every function takes tensors and returns a tensor; none holds state. The loss
classes in :mod:`distill.losses` wrap these with a weight and a config entry.
Logit losses are computed in float32 even under mixed precision, since
softmax over many classes loses too much in bf16/fp16.

The functions live in one file per family and are all importable from here.
"""

from distill.losses.functional.features import (
    activation_penalty,
    attention_transfer_loss,
    hint_loss,
    pkt_loss,
    rkd_loss,
    similarity_preserving_loss,
)
from distill.losses.functional.logits import (
    bce_kd_loss,
    cosine_loss,
    dist_loss,
    dkd_loss,
    jsd_loss,
    kd_loss,
    logit_mse_loss,
    masked_bce_with_logits,
    pseudo_label_loss,
    reverse_kl_loss,
    soft_cross_entropy,
    tvd_loss,
)
from distill.losses.functional.relations import (
    ab_loss,
    cc_loss,
    crd_nce_loss,
    crd_scores,
    fsp_loss,
    fsp_matrix,
    ft_loss,
    hcl_loss,
    nst_loss,
    taylor_rbf_correlation,
    vid_loss,
)

__all__ = [
    "ab_loss",
    "cc_loss",
    "crd_nce_loss",
    "crd_scores",
    "fsp_loss",
    "fsp_matrix",
    "ft_loss",
    "hcl_loss",
    "nst_loss",
    "taylor_rbf_correlation",
    "vid_loss",
    "activation_penalty",
    "attention_transfer_loss",
    "hint_loss",
    "pkt_loss",
    "rkd_loss",
    "similarity_preserving_loss",
    "bce_kd_loss",
    "cosine_loss",
    "dist_loss",
    "dkd_loss",
    "jsd_loss",
    "kd_loss",
    "logit_mse_loss",
    "masked_bce_with_logits",
    "pseudo_label_loss",
    "reverse_kl_loss",
    "soft_cross_entropy",
    "tvd_loss",
]

# token-level losses for causal language models
from distill.losses.functional.token_losses import (  # noqa: E402
    global_token_normalizer,
    token_cross_entropy,
    token_jsd_loss,
    token_kl_loss,
    token_reverse_kl_loss,
    token_skew_kl_loss,
    token_tvd_loss,
)
from distill.losses.functional.token_topk import TeacherTopK, teacher_topk, topk_buckets  # noqa: E402

__all__ += [
    "global_token_normalizer",
    "token_cross_entropy",
    "token_jsd_loss",
    "token_kl_loss",
    "token_reverse_kl_loss",
    "token_skew_kl_loss",
    "token_tvd_loss",
    "TeacherTopK",
    "teacher_topk",
    "topk_buckets",
]
from distill.losses.functional.token_attention import token_attention_kl  # noqa: E402
from distill.losses.functional.token_hidden_states import token_hidden_state_mse  # noqa: E402

__all__ += ["token_attention_kl", "token_hidden_state_mse"]

# token losses between models with different tokenizers, at aligned positions
from distill.losses.functional.token_cross_tokenizer import (  # noqa: E402
    shared_vocabulary_kl,
    sorted_probability_distance,
    token_exact_match_loss,
    token_uld_loss,
)

__all__ += ["shared_vocabulary_kl", "sorted_probability_distance", "token_exact_match_loss", "token_uld_loss"]
