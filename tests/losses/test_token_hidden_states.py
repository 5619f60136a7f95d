"""Hidden-state distillation for causal LMs: masked MSE on loss tokens, projections outside the student."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from distill import DistillationModule
from distill.errors import DistillError
from distill.losses import StepOutputs, TokenHiddenStates, TokenKL
from distill.losses.functional.token_hidden_states import token_hidden_state_mse

IGNORE = -100


def test_mse_over_the_loss_tokens_by_explicit_loop():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 6, 5, generator=g), torch.randn(2, 6, 5, generator=g)
    labels = torch.randint(0, 9, (2, 6), generator=g)
    labels[0, :3] = IGNORE
    labels[1, -1] = IGNORE
    values = [
        float(((s[b, i] - t[b, i]) ** 2).mean())
        for b in range(2)
        for i in range(5)
        if labels[b, i + 1] != IGNORE
    ]
    assert token_hidden_state_mse(s, t, labels).item() == pytest.approx(sum(values) / len(values), rel=1e-6)
    assert token_hidden_state_mse(s, t, labels, normalizer=20.0).item() == pytest.approx(sum(values) / 20, rel=1e-6)
    # positions without loss do not count
    changed = s.clone()
    changed[0, :2] += 100.0
    changed[:, -1] += 100.0
    assert token_hidden_state_mse(changed, t, labels).item() == pytest.approx(sum(values) / len(values), rel=1e-6)


def test_shape_mismatch_is_a_one_line_error():
    with pytest.raises(DistillError, match="hidden states"):
        token_hidden_state_mse(torch.randn(2, 6, 5), torch.randn(2, 6, 4), torch.zeros(2, 6, dtype=torch.long))


def _gpt2(layers, width, seed):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=31, n_positions=16, n_embd=width, n_layer=layers, n_head=2, bos_token_id=0, eos_token_id=0,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def test_in_the_distillation_module_with_a_projection_that_stays_out_of_the_student():
    teacher, student = _gpt2(3, 16, 0), _gpt2(2, 8, 1)
    hidden = TokenHiddenStates("transformer.h.0", "transformer.h.1")
    module = DistillationModule(student, teacher, {"kd": TokenKL(chunk_size=4), "hidden": hidden})
    ids = torch.randint(0, 31, (2, 10))
    labels = ids.clone()
    labels[:, :4] = IGNORE
    batch = {"input_ids": ids, "labels": labels}
    module.build(batch)
    assert isinstance(hidden.projections[0], torch.nn.Linear)
    assert hidden.projections[0].weight.shape == (16, 8)
    assert not any("projections" in key for key in student.state_dict())

    outputs = module._run_models(batch, with_teacher=True)
    value = hidden(outputs)
    # the same number by hand from the models' own hidden states (entry i + 1 follows block i;
    # the last entry has the final layer norm applied, so blocks before the last are compared)
    with torch.no_grad():
        s_hidden = student(input_ids=ids, output_hidden_states=True).hidden_states[1]
        t_hidden = teacher(input_ids=ids, output_hidden_states=True).hidden_states[2]
    mask = labels[:, 1:] != IGNORE
    projected = hidden.projections[0](s_hidden)
    expected = ((projected[:, :-1][mask] - t_hidden[:, :-1][mask]) ** 2).mean(-1).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert hidden.projections[0].weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())


def test_unbuilt_projections_are_a_one_line_error():
    term = TokenHiddenStates("a")
    outputs = StepOutputs(student=torch.zeros(1, 2, 3), labels=torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(DistillError, match="not built"):
        term(outputs)
