"""The hf_sequence_classification family on tiny BERTs saved in tmp_path (offline, no hub)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from transformers import AutoModel, BertForSequenceClassification

from distill.errors import DistillError
from distill.models import build_model, load_weights
from distill.models.huggingface_init import every_other
from distill.models.select_classes import SelectClasses

FAMILY = "hf_sequence_classification"
IDS = torch.tensor([[2, 5, 6, 8, 11, 3], [2, 5, 7, 8, 13, 3]])


def logits_of(model, ids=IDS):
    model.eval()
    with torch.no_grad():
        output = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return output if isinstance(output, torch.Tensor) else output.logits


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_import_does_not_load_transformers():
    code = "import sys, distill, distill.models, distill.models.huggingface; print('transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_path_loads_the_saved_classifier(tiny_bert):
    path = tiny_bert(num_labels=3)
    model = build_model(FAMILY, 3, path=str(path))
    reference = BertForSequenceClassification.from_pretrained(path)
    assert isinstance(model, BertForSequenceClassification)
    assert torch.equal(logits_of(model), logits_of(reference))
    # weights=DEFAULT: the same model, the head checked to be a trained one
    assert torch.equal(logits_of(build_model(FAMILY, 3, weights="DEFAULT", path=str(path))), logits_of(reference))


def test_base_model_gets_a_new_head_with_the_data_classes(tiny_bert):
    path = tiny_bert(head=False)
    model = build_model(FAMILY, 5, path=str(path))
    assert model.classifier.out_features == 5
    encoder = AutoModel.from_pretrained(path)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, encoder.embeddings.word_embeddings.weight)
    with pytest.raises(DistillError, match="no trained sequence-classification head"):
        build_model(FAMILY, 5, weights="DEFAULT", path=str(path))


def test_head_with_other_labels_needs_a_class_map(tiny_bert):
    path = tiny_bert(num_labels=3)
    with pytest.raises(DistillError, match=r"3 labels .* data has 2 classes; give class_map"):
        build_model(FAMILY, 2, path=str(path))


def test_class_map_selects_the_models_outputs(tiny_bert):
    path = tiny_bert(num_labels=3)
    model = build_model(FAMILY, 2, path=str(path), class_map=[2, 0])
    assert isinstance(model, SelectClasses)
    full = logits_of(BertForSequenceClassification.from_pretrained(path))
    assert torch.equal(logits_of(model), full[:, [2, 0]])
    # by label name (the saved config's default names LABEL_0..2), and the weights keep their names
    named = build_model(FAMILY, 2, path=str(path), class_map=["LABEL_2", "LABEL_0"])
    assert torch.equal(logits_of(named), full[:, [2, 0]])
    assert set(model.state_dict()) == {f"model.{k}" for k in BertForSequenceClassification.from_pretrained(path).state_dict()}


@pytest.mark.parametrize(
    ("class_map", "message"),
    [([0], "one model output per data class"), ([0, 3], "outside the 3 outputs"), (["LABEL_0", "LABEL_9"], "names label 'LABEL_9'")],
)
def test_bad_class_maps(tiny_bert, class_map, message):
    with pytest.raises(DistillError, match=message):
        build_model(FAMILY, 2, path=str(tiny_bert(num_labels=3)), class_map=class_map)


@pytest.mark.parametrize("path", ["does/not/exist", "bert-base-uncased"])
def test_missing_directory_or_hub_name_is_one_line(path):
    with pytest.raises(DistillError, match="is not a local directory; distill loads Hugging Face models offline") as error:
        build_model(FAMILY, 2, path=path)
    assert "\n" not in str(error.value)


def test_directory_without_config(tmp_path):
    with pytest.raises(DistillError, match="has no config.json"):
        build_model(FAMILY, 2, path=str(tmp_path))


def test_neither_path_nor_config_from():
    with pytest.raises(DistillError, match="needs path=DIR .* or config_from=DIR"):
        build_model(FAMILY, 2)


def test_torchvision_weight_names_are_refused(tiny_bert):
    with pytest.raises(DistillError, match="weights='IMAGENET1K_V1' is not understood"):
        build_model(FAMILY, 2, weights="IMAGENET1K_V1", path=str(tiny_bert()))


def test_config_from_builds_a_smaller_model(tiny_bert):
    path = tiny_bert(layers=4)
    model = build_model(FAMILY, 3, config_from=str(path), config={"num_hidden_layers": 1, "hidden_size": None})
    assert len(model.bert.encoder.layer) == 1
    assert model.config.hidden_size == 32  # None keeps the source's value
    assert model.classifier.out_features == 3
    assert logits_of(model).shape == (2, 3)
    with pytest.raises(DistillError, match=r"'num_hiden_layers' is not a setting .* \(did you mean num_hidden_layers"):
        build_model(FAMILY, 3, config_from=str(path), config={"num_hiden_layers": 1})


def test_every_other_layer_initialisation(tiny_bert):
    path = tiny_bert(layers=4)
    model = build_model(FAMILY, 2, config_from=str(path), config={"num_hidden_layers": 2}, init_layers="every_other")
    source = AutoModel.from_pretrained(path).state_dict()
    state = model.bert.state_dict()
    assert every_other(2) == [0, 2]
    for key in ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", "pooler.dense.weight"):
        assert torch.equal(state[key], source[key]), key
    for student_layer, source_layer in ((0, 0), (1, 2)):
        for name in ("attention.self.query.weight", "output.dense.weight"):
            assert torch.equal(
                state[f"encoder.layer.{student_layer}.{name}"], source[f"encoder.layer.{source_layer}.{name}"]
            )
    assert not torch.equal(state["encoder.layer.1.output.dense.weight"], source["encoder.layer.1.output.dense.weight"])
    # an explicit list
    chosen = build_model(FAMILY, 2, config_from=str(path), config={"num_hidden_layers": 2}, init_layers=[3, 1])
    assert torch.equal(chosen.bert.state_dict()["encoder.layer.0.output.dense.weight"], source["encoder.layer.3.output.dense.weight"])


def test_bad_layer_initialisations(tiny_bert):
    path = str(tiny_bert(layers=2))
    with pytest.raises(DistillError, match=r"outside 0..1"):
        build_model(FAMILY, 2, config_from=path, config={"num_hidden_layers": 2}, init_layers="every_other")
    with pytest.raises(DistillError, match="one source layer per student layer"):
        build_model(FAMILY, 2, config_from=path, config={"num_hidden_layers": 1}, init_layers=[0, 1])
    with pytest.raises(DistillError, match="different hidden size"):
        build_model(
            FAMILY, 2, config_from=path, config={"num_hidden_layers": 1, "hidden_size": 16, "intermediate_size": 32},
            init_layers=[0],
        )
    with pytest.raises(DistillError, match="got 'every_third'; or give init_layers=every_other"):
        build_model(FAMILY, 2, config_from=path, init_layers="every_third")
    with pytest.raises(DistillError, match="init_layers starts a new one"):
        build_model(FAMILY, 2, path=path, init_layers=[0])


def test_checkpoint_round_trip(tiny_bert, tmp_path):
    path = str(tiny_bert(head=False))
    model = build_model(FAMILY, 2, path=path)
    torch.nn.init.normal_(model.classifier.weight)
    torch.save(model.state_dict(), tmp_path / "teacher.pt")
    loaded = load_weights(build_model(FAMILY, 2, path=path), tmp_path / "teacher.pt")
    assert torch.equal(logits_of(loaded), logits_of(model))


def test_eager_attention_exposes_probabilities(tiny_bert):
    # attention modules return (context, probabilities); the probabilities exist only with eager attention
    path = str(tiny_bert())
    for model in (build_model(FAMILY, 2, path=path, attn_implementation="eager"),
                  build_model(FAMILY, 2, config_from=path, attn_implementation="eager")):
        context, probabilities = attention_output(model)
        assert context.shape == (2, 6, 32) and probabilities.shape == (2, 2, 6, 6)
        torch.testing.assert_close(probabilities.sum(-1), torch.ones(2, 2, 6))
    assert attention_output(build_model(FAMILY, 2, path=path))[1] is None  # sdpa, the default


def attention_output(model):
    seen = {}
    model.bert.encoder.layer[1].attention.self.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    logits_of(model)
    return seen["out"]


def test_teacher_with_weights_default_is_used_as_saved(tiny_bert):
    from distill.teachers import prepare_teacher

    path = str(tiny_bert(num_labels=2))
    prepared = prepare_teacher(FAMILY, 2, weights="DEFAULT", options={"path": path})
    assert (prepared.origin, prepared.source) == ("weights", f"weights in {path}")
    assert torch.equal(logits_of(prepared.model), logits_of(BertForSequenceClassification.from_pretrained(path)))
