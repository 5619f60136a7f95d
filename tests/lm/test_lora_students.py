"""LoRA students: only the adapters train (and only they are in the optimizer), merged on export, clear errors."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from distill import DistillationModule
from distill.data import LanguageModelDataModule
from distill.errors import DistillError
from distill.lm.export import save_language_model
from distill.losses import TokenKL
from distill.models import build_model
from distill.models.lora import adapter_parameter_names, is_lora, with_lora

@pytest.fixture
def pairs_data(tmp_path, tiny_tokenizer_dir):
    rows = [{"prompt": f"The for {'loop ' * (i % 3)}", "completion": " statement is a block"} for i in range(8)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return LanguageModelDataModule(train_file=str(path), tokenizer=str(tiny_tokenizer_dir), block_size=16, batch_size=4,
                                   val_fraction=0.25, test_fraction=0.25)


GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 16, "n_head": 2, "n_positions": 16}


def lora_student(vocab=300, **lora):
    torch.manual_seed(0)
    return build_model("hf_causal_lm", vocab, config=GPT2, lora={"r": 4, "alpha": 8, "dropout": 0.0, **lora})


def randomise_adapters(model):
    """LoRA's B starts at zero (the adapted model equals the base): give the adapters an effect."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.5)


def test_the_optimizer_holds_the_adapters_and_nothing_else(make_gpt2):
    student = lora_student()
    assert is_lora(student)
    module = DistillationModule(student, make_gpt2(300), {"kd": TokenKL()})
    optimizer = module.configure_optimizers()
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    named = dict(student.named_parameters())
    adapters = adapter_parameter_names(student)
    # gpt2's c_attn in both layers: lora_A and lora_B each
    assert len(adapters) == 4 and all(".c_attn.lora_" in n for n in adapters)
    assert held == {id(named[n]) for n in adapters}
    assert all(not p.requires_grad for n, p in named.items() if n not in adapters)


def test_a_fit_changes_the_adapters_and_not_the_base_weights(pairs_data, make_gpt2, fast_trainer):
    student = lora_student()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    module = DistillationModule(student, make_gpt2(300), {"kd": TokenKL()},
                                optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2))
    fast_trainer(limit_train_batches=2, limit_val_batches=0).fit(module, datamodule=pairs_data)
    after = student.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)  # lora_B moved off zero; the base stayed


def test_the_merged_export_gives_the_adapted_models_logits(tmp_path, make_gpt2):
    torch.manual_seed(0)
    student = with_lora(make_gpt2(300), r=4, alpha=8)
    randomise_adapters(student)
    student.eval()
    ids = torch.randint(0, 300, (2, 12))
    with torch.no_grad():
        adapted = student(input_ids=ids).logits
        base = student.get_base_model()
        with student.disable_adapter():
            plain = base(input_ids=ids).logits
    assert (adapted - plain).abs().max() > 1e-2  # the adapters matter, so the comparison below can fail

    folder = save_language_model(student, None, tmp_path / "merged")
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    assert not any("lora" in k for k in loaded.state_dict())  # a plain model, loadable without peft
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, adapted, rtol=1e-5, atol=1e-5)
    assert is_lora(student) and adapter_parameter_names(student)  # the run's student keeps its adapters


def test_lora_from_the_student_config(make_gpt2):
    """The config keys of conf/student/*.yaml: lora.r=null is no adapters; target_modules picks the layers."""
    torch.manual_seed(0)
    plain = build_model("hf_causal_lm", 300, config=GPT2, lora={"r": None, "alpha": 16, "dropout": 0.0, "target_modules": None})
    assert not is_lora(plain) and all(p.requires_grad for p in plain.parameters())
    on_mlp = lora_student(target_modules=["c_fc"])
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in adapter_parameter_names(on_mlp)} == {"c_fc"}


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"r": 0}, "rank must be an integer >= 1"),
        ({"r": 4, "dropout": 1.5}, "lora.dropout=1.5"),
        ({"r": 4, "target_modules": ["q_proj"]}, "set lora.target_modules to some of its linear layers: ['c_attn', 'c_fc', 'c_proj'"),
        ({"r": 4, "rank": 2}, "unknown lora setting(s) ['rank']"),
    ],
)
def test_bad_lora_settings_are_one_line_errors(settings, message):
    with pytest.raises(DistillError) as caught:
        build_model("hf_causal_lm", 300, config=GPT2, lora=settings)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_without_peft_the_error_names_the_extra(monkeypatch, make_gpt2):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    with pytest.raises(DistillError, match=r"need the peft package \(the lora extra\): pip install .*\[lora\]"):
        with_lora(make_gpt2(300), r=4)


def test_the_lm_experiment_composes_a_lora_student_with_checkpointing():
    from hydra import compose, initialize_config_dir

    from distill.cli.lm_models import key_options, model_options
    from distill.models.gradient_checkpointing import is_checkpointing
    from distill.run import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        plain = compose("config", overrides=["experiment=lm"])
        cfg = compose("config", overrides=["experiment=lm", "student.lora.r=4", "student.lora.target_modules=[c_attn,c_proj]",
                                           "student.gradient_checkpointing=true"])
    torch.manual_seed(0)
    student = build_model(cfg.student.name, 300, **model_options(cfg.student))
    assert is_lora(student) and is_checkpointing(student)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in adapter_parameter_names(student)} == {"c_attn", "c_proj"}
    # the defaults (no adapters, no checkpointing) leave a trained-first model's cache key as it was
    assert key_options(model_options(plain.student)).keys() == {"path", "config_from", "config", "init_layers", "attn_implementation"}
    assert key_options(model_options(cfg.student))["lora"]["r"] == 4
