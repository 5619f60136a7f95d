"""Feature terms on named transformer layers: FitNet between tiny BERTs of different widths."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from distill import DistillationModule
from distill.data import TextClassificationDataModule
from distill.losses import CrossEntropy, FitNet
from distill.models import build_model

FAMILY = "hf_sequence_classification"
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def test_bert_layer_outputs_one_tensor(tiny_bert):
    # transformers 5: a BertLayer returns the hidden states as a tensor (4.x returned a tuple)
    model = build_model(FAMILY, 2, path=str(tiny_bert()))
    seen = {}
    model.bert.encoder.layer[1].register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    ids = torch.tensor([[2, 5, 6, 3]])
    hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    assert torch.equal(seen["out"], hidden[2])  # hidden_states[0] is the embeddings' output


def test_fitnet_training_step_on_tiny_berts(tiny_bert, tiny_tokenizer, sentiment_files):
    teacher_dir = tiny_bert("teacher", hidden_size=32, layers=2)
    teacher = build_model(FAMILY, 2, path=str(teacher_dir))
    student = build_model(
        FAMILY, 2, config_from=str(teacher_dir),
        config={"hidden_size": 16, "num_hidden_layers": 1, "intermediate_size": 32, **NO_DROPOUT},
    )
    fitnet = FitNet(student_layer="bert.encoder.layer.0", teacher_layer="bert.encoder.layer.1")
    module = DistillationModule(student, teacher, {"fitnet": fitnet, "ce": CrossEntropy()})
    data = TextClassificationDataModule(
        train_file=str(sentiment_files["train"]), tokenizer=str(teacher_dir), val_file=str(sentiment_files["val"]),
        test_file=str(sentiment_files["test"]), batch_size=8,
    )
    batch = next(iter(data.val_dataloader()))
    module.build(batch)
    adapter = fitnet.adapters[0]
    assert isinstance(adapter, torch.nn.Linear) and (adapter.in_features, adapter.out_features) == (16, 32)

    # the loss, worked out from the models' own hidden states
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        s = student(**inputs, output_hidden_states=True)
        t = teacher.eval()(**inputs, output_hidden_states=True)
        expected = F.mse_loss(adapter(s.hidden_states[1]), t.hidden_states[2]) + F.cross_entropy(s.logits, batch["labels"])
    teacher_state = copy.deepcopy(teacher.state_dict())
    student_state = copy.deepcopy(student.state_dict())
    adapter_state = copy.deepcopy(adapter.state_dict())
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.1)
    loss = module.training_step(batch, 0)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    loss.backward()
    optimizer.step()
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_state.items())
    assert not torch.equal(student_state["bert.encoder.layer.0.output.dense.weight"], student.bert.encoder.layer[0].output.dense.weight)
    assert not torch.equal(adapter_state["weight"], adapter.weight)


def test_attention_probabilities_distilled_by_layer_name(tiny_bert, tiny_tokenizer, sentiment_files):
    """``name[1]`` captures a BERT self-attention's probabilities; FitNet matches heads through a 1x1 conv."""
    teacher_dir = tiny_bert("teacher", hidden_size=32, layers=2)
    teacher = build_model(FAMILY, 2, path=str(teacher_dir), attn_implementation="eager")
    student = build_model(
        FAMILY, 2, config_from=str(teacher_dir), attn_implementation="eager",
        config={"hidden_size": 16, "num_attention_heads": 1, "num_hidden_layers": 1, "intermediate_size": 32, **NO_DROPOUT},
    )
    fitnet = FitNet(
        student_layer="bert.encoder.layer.0.attention.self[1]", teacher_layer="bert.encoder.layer.1.attention.self[1]"
    )
    module = DistillationModule(student, teacher, {"attention": fitnet})
    data = TextClassificationDataModule(
        train_file=str(sentiment_files["train"]), tokenizer=str(teacher_dir), val_file=str(sentiment_files["val"]),
        test_file=str(sentiment_files["test"]), batch_size=8,
    )
    batch = next(iter(data.val_dataloader()))
    module.build(batch)
    adapter = fitnet.adapters[0]  # 1 student head -> 2 teacher heads
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        s = student(**inputs, output_attentions=True).attentions[0]  # [batch, heads, tokens, tokens]
        t = teacher.eval()(**inputs, output_attentions=True).attentions[1]
        assert s.shape[1] == 1 and t.shape[1] == 2
        torch.testing.assert_close(s.sum(-1), torch.ones_like(s.sum(-1)))  # rows of probabilities
        expected = F.mse_loss(adapter(s), t)
    torch.testing.assert_close(module.training_step(batch, 0).detach(), expected, rtol=1e-5, atol=1e-6)


def test_a_missing_tuple_element_is_a_clear_error(tiny_bert, tiny_tokenizer, sentiment_files):
    from distill.errors import DistillError
    from distill.features import FeatureCapture

    model = build_model(FAMILY, 2, path=str(tiny_bert()), attn_implementation="eager")
    capture = FeatureCapture(model, ["bert.encoder.layer.0.attention.self[5]"], "teacher")
    with pytest.raises(DistillError, match=r"teacher layer 'bert.encoder.layer.0.attention.self\[5\]': its output is a tuple of 2 items with no tensor at position 5"):
        model(input_ids=torch.tensor([[2, 5, 6, 3]]))
    capture.remove()
