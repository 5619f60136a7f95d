"""The hf_causal_lm model family: loading offline, students built from a config, layer initialisation, train mode."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from distill.errors import DistillError
from distill.models import build_model
from distill.models.causal_lm import load_tokenizer, source_layers

FAMILY = "hf_causal_lm"
IDS = torch.tensor([[5, 17, 40, 99, 3, 8]])


def logits(model):
    model.eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_path_loads_the_saved_model_in_train_mode(save_tiny_gpt2):
    folder = save_tiny_gpt2("teacher")
    model = build_model(FAMILY, 300, path=str(folder))
    assert model.training and all(m.training for m in model.modules())
    torch.testing.assert_close(logits(model), logits(AutoModelForCausalLM.from_pretrained(folder)), rtol=0, atol=0)
    assert len(load_tokenizer(str(folder))) == 300


@pytest.mark.parametrize("path", ["/nonexistent/model", "HuggingFaceTB/SmolLM2-135M"])
def test_missing_directory_is_one_line(path):
    with pytest.raises(DistillError, match="not a local directory; distill loads language models offline") as info:
        build_model(FAMILY, 300, path=path)
    assert "\n" not in str(info.value)


def test_a_model_with_fewer_rows_than_the_tokenizer_is_refused(save_tiny_gpt2):
    with pytest.raises(DistillError, match="predicts 300 tokens but the data's tokenizer has 400"):
        build_model(FAMILY, 400, path=str(save_tiny_gpt2("teacher")))


def test_new_model_from_model_type_has_the_datas_vocabulary():
    model = build_model(FAMILY, 257, config={"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 32,
                                             "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 2})
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == 257 and model.training
    with pytest.raises(DistillError, match="unknown model_type 'gtp2'.*gpt2"):
        build_model(FAMILY, 257, config={"model_type": "gtp2"})
    with pytest.raises(DistillError, match="config.model_type"):
        build_model(FAMILY, 257)
    with pytest.raises(DistillError, match="'n_layers' is not a setting.*n_layer"):
        build_model(FAMILY, 257, config={"model_type": "gpt2", "n_layers": 1})


def test_student_from_the_teachers_config_with_every_kth_layer(save_tiny_gpt2):
    folder = save_tiny_gpt2("deep", layers=4)
    teacher = AutoModelForCausalLM.from_pretrained(folder)
    student = build_model(FAMILY, 300, config_from=str(folder), config={"n_layer": 2}, init_layers=2)
    assert student.config.n_layer == 2 and student.training
    t, s = teacher.state_dict(), student.state_dict()
    assert torch.equal(s["transformer.wte.weight"], t["transformer.wte.weight"])
    assert torch.equal(s["transformer.wpe.weight"], t["transformer.wpe.weight"])
    for i, j in enumerate([0, 2]):  # every 2nd layer: student layer i is teacher layer 2i
        assert torch.equal(s[f"transformer.h.{i}.mlp.c_fc.weight"], t[f"transformer.h.{j}.mlp.c_fc.weight"])
    assert not torch.equal(s["transformer.h.1.mlp.c_fc.weight"], t["transformer.h.1.mlp.c_fc.weight"])
    # without init_layers: the same architecture from random weights
    fresh = build_model(FAMILY, 300, config_from=str(folder), config={"n_layer": 2})
    assert not torch.equal(fresh.state_dict()["transformer.wte.weight"], t["transformer.wte.weight"])


def test_a_narrower_student_cannot_start_from_teacher_layers(save_tiny_gpt2):
    with pytest.raises(DistillError, match="different hidden size"):
        build_model(FAMILY, 300, config_from=str(save_tiny_gpt2("teacher")), config={"n_embd": 16}, init_layers=1)


def test_source_layers():
    assert source_layers(3, 3) == [0, 3, 6]
    assert source_layers("every_other", 2) == [0, 2]
    assert source_layers([1, 3], 2) == [1, 3]
    with pytest.raises(DistillError, match="k >= 1"):
        source_layers(0, 2)


def tiny_llama_gguf(path, vocab=64, width=16, ffn=32):
    """A one-layer Llama written as a float32 GGUF file (llama.cpp's tensor names); returns its token embedding."""
    gguf = pytest.importorskip("gguf", reason="pip install gguf to write GGUF files")
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape):
        return (torch.randn(*shape, generator=generator) * 0.1).numpy()

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(32)
    writer.add_embedding_length(width)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(width // 2)
    writer.add_vocab_size(vocab)
    embedding = tensor(vocab, width)
    writer.add_tensor("token_embd.weight", embedding)
    writer.add_tensor("output.weight", tensor(vocab, width))
    writer.add_tensor("output_norm.weight", torch.ones(width).numpy())
    for name, shape in [("attn_norm", (width,)), ("ffn_norm", (width,)), ("attn_q", (width, width)), ("attn_k", (width, width)),
                        ("attn_v", (width, width)), ("attn_output", (width, width)), ("ffn_gate", (ffn, width)),
                        ("ffn_up", (ffn, width)), ("ffn_down", (width, ffn))]:
        writer.add_tensor(f"blk.0.{name}.weight", tensor(*shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return torch.from_numpy(embedding)


def test_a_model_read_from_a_gguf_file_is_a_plain_model_that_exports(tmp_path):
    """transformers keeps its GGUF quantizer on a model it dequantised, and save_pretrained then refuses it
    ("quantized with gguf and is not serializable"): a student started from a .gguf file could not be exported."""
    from distill.lm.export import save_language_model

    embedding = tiny_llama_gguf(tmp_path / "tiny.gguf")
    model = build_model(FAMILY, 64, path=str(tmp_path / "tiny.gguf"))
    assert type(model).__name__ == "LlamaForCausalLM" and model.training
    assert torch.equal(model.model.embed_tokens.weight, embedding)  # the file's weights, in float32
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert getattr(model.config, "quantization_config", None) is None
    ids = torch.tensor([[5, 17, 40, 9, 3, 8]])
    folder = save_language_model(model, None, tmp_path / "saved")
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model.eval()(input_ids=ids).logits, rtol=0, atol=0)
