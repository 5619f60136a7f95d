"""Attention transfer for causal LMs: per-head KL of attention rows on the loss-carrying queries."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import TokenAttention, TokenKL
from distill.losses.functional.token_attention import token_attention_kl

IGNORE = -100


def _causal_attention(batch, heads, length, generator):
    scores = torch.randn(batch, heads, length, length, generator=generator)
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1)


def test_per_head_kl_over_the_loss_queries_by_explicit_loop():
    g = torch.Generator().manual_seed(0)
    s, t = _causal_attention(2, 3, 6, g), _causal_attention(2, 3, 6, g)
    labels = torch.randint(0, 9, (2, 6), generator=g)
    labels[0, :3] = IGNORE
    values = []
    for b in range(2):
        for i in range(5):
            if labels[b, i + 1] == IGNORE:
                continue
            per_head = []
            for h in range(3):
                p, q = t[b, h, i, : i + 1].double(), s[b, h, i, : i + 1].double()  # the keys a causal query sees
                per_head.append(float((p * (p / q).log()).sum()))
            values.append(sum(per_head) / 3)
    assert token_attention_kl(s, t, labels).item() == pytest.approx(sum(values) / len(values), rel=1e-5)
    assert token_attention_kl(t, t, labels).item() == pytest.approx(0.0, abs=1e-7)


def test_different_head_counts_are_a_one_line_error():
    with pytest.raises(DistillError, match="heads"):
        token_attention_kl(torch.rand(1, 2, 4, 4), torch.rand(1, 4, 4, 4), torch.zeros(1, 4, dtype=torch.long))


def _gpt2(layers, width, seed):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=31, n_positions=16, n_embd=width, n_layer=layers, n_head=2, bos_token_id=0,
                        eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    config._attn_implementation = "eager"  # attention probabilities are returned by eager attention only
    return GPT2LMHeadModel(config)


def test_in_the_distillation_module_on_gpt2_attention():
    teacher, student = _gpt2(2, 16, 0), _gpt2(1, 8, 1)
    attention = TokenAttention("transformer.h.0.attn[1]", "transformer.h.1.attn[1]")
    module = DistillationModule(student, teacher, {"kd": TokenKL(), "attention": attention})
    ids = torch.randint(0, 31, (2, 9))
    labels = ids.clone()
    labels[:, :3] = IGNORE
    outputs = module._run_models({"input_ids": ids, "labels": labels}, with_teacher=True)
    value = attention(outputs)
    with torch.no_grad():
        s = student(input_ids=ids, output_attentions=True).attentions[0]
        t = teacher(input_ids=ids, output_attentions=True).attentions[1]
    assert value.item() == pytest.approx(token_attention_kl(s, t, labels).item(), rel=1e-5)
    assert value.item() > 0
    value.backward()
    assert student.transformer.h[0].attn.c_attn.weight.grad is not None
