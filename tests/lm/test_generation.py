"""Completions of prompts: the prompt rule, left-padded batched generate vs one prompt at a time, modes, rows."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.lm.generation import (
    GenerationSettings,
    completion_rows,
    generate_completions,
    generating,
    prompt_ends,
    prompts_of,
)
from distill.lm.vocabulary import VocabularySlice
from tests.lm.conftest import EOS, PAD, prompt_completion_batch, tiny_gpt2


def test_prompts_end_at_the_first_loss_token_or_after_prompt_length_real_tokens():
    batch = prompt_completion_batch()
    assert prompt_ends(batch["labels"], batch["attention_mask"]).tolist() == [3, 5, 2]
    assert prompts_of(batch["input_ids"], batch["attention_mask"], batch["labels"]) == [[5, 6, 7], [11, 12, 13, 14, 15], [17, 18]]
    # a text block (every token but the first carries loss): the first token is the prompt
    block = torch.tensor([[4, 5, 6, 7]])
    assert prompts_of(block, None, block.clone()) == [[4]]
    assert prompts_of(block, None, block.clone(), prompt_length=3) == [[4, 5, 6]]
    assert prompts_of(block, None, block.clone(), prompt_length=9) == [[4, 5, 6, 7]]  # fewer real tokens: all
    # left padding is left out of the prompt; a row with no loss token is all prompt
    ids, mask = torch.tensor([[PAD, PAD, 4, 5, 6]]), torch.tensor([[0, 0, 1, 1, 1]])
    assert prompts_of(ids, mask, torch.tensor([[-100, -100, -100, -100, 6]])) == [[4, 5]]
    assert prompts_of(ids, mask, torch.tensor([[-100, -100, 4, 5, 6]]), prompt_length=2) == [[4, 5]]
    assert prompts_of(ids, mask, torch.full((1, 5), -100)) == [[4, 5, 6]]


def test_batched_left_padded_generation_equals_one_prompt_at_a_time():
    model = tiny_gpt2(seed=3, layers=2).eval()
    prompts = [[5, 6, 7, 8, 9], [11, 2], [20, 21, 22]]
    settings = GenerationSettings(max_new_tokens=6)
    together = generate_completions(model, prompts, settings, eos_token_id=None, pad_token_id=PAD, seed=0)
    with torch.no_grad():  # an independent greedy decoder: argmax of the full forward pass, token by token
        alone = []
        for prompt in prompts:
            tokens = list(prompt)
            for _ in range(6):
                tokens.append(int(model(torch.tensor([tokens])).logits[0, -1].argmax()))
            alone.append(tokens[len(prompt):])
    assert together == alone
    assert len({tuple(c) for c in together}) > 1  # not a degenerate model that says one thing


def test_a_completion_ends_after_its_first_eos():
    model = tiny_gpt2(seed=3)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[EOS] = 1.0  # with a constant final hidden state of 5: EOS is always the top token
        model.transformer.ln_f.bias.fill_(5.0)
        model.transformer.ln_f.weight.zero_()
    out = generate_completions(model, [[5, 6], [7]], GenerationSettings(max_new_tokens=5), eos_token_id=EOS,
                               pad_token_id=PAD, seed=0)
    assert out == [[EOS], [EOS]]


def test_sampling_is_seeded_and_leaves_the_callers_random_stream_alone():
    model = tiny_gpt2(seed=4)
    settings = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=3.0)
    torch.manual_seed(123)
    first = generate_completions(model, [[5, 6]] * 4, settings, eos_token_id=None, pad_token_id=PAD, seed=7)
    after = torch.rand(1)
    torch.manual_seed(123)
    again = generate_completions(model, [[5, 6]] * 4, settings, eos_token_id=None, pad_token_id=PAD, seed=7)
    assert first == again and torch.equal(torch.rand(1), after)
    assert len({tuple(c) for c in first}) > 1  # hot sampling: the four rows differ
    other = generate_completions(model, [[5, 6]] * 4, settings, eos_token_id=None, pad_token_id=PAD, seed=8)
    assert other != first


def test_generation_runs_in_eval_mode_without_gradients_and_restores_each_modules_mode():
    model = tiny_gpt2(seed=5).train()
    model.transformer.h[0].eval()  # a submodule the caller keeps in eval mode stays so
    seen = []
    model.transformer.register_forward_hook(lambda m, i, o: seen.append((m.training, torch.is_grad_enabled())))
    generate_completions(model, [[5, 6]], GenerationSettings(max_new_tokens=3), eos_token_id=None, pad_token_id=PAD, seed=0)
    assert seen and all(mode == (False, False) for mode in seen)
    assert model.training and model.transformer.training and not model.transformer.h[0].training
    with pytest.raises(RuntimeError):
        with generating(model):
            raise RuntimeError("boom")
    assert model.training and not model.transformer.h[0].training  # restored on errors too


def test_a_vocabulary_slice_never_generates_its_cut_padding_rows():
    model = tiny_gpt2(seed=6)
    with torch.no_grad():
        model.lm_head.weight[30:] = 10.0 * model.lm_head.weight[30:].sign().abs()  # rows 30+ favoured where x > 0
    settings = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=2.0)
    cut = generate_completions(VocabularySlice(model, 30), [[5, 6]] * 6, settings, eos_token_id=None, pad_token_id=PAD, seed=0)
    assert all(token < 30 for completion in cut for token in completion)
    full = generate_completions(model, [[5, 6]] * 6, settings, eos_token_id=None, pad_token_id=PAD, seed=0)
    assert any(token >= 30 for completion in full for token in completion)  # the check above could fail


def test_completion_rows_put_the_completion_behind_its_prompt_with_loss_on_it_alone():
    ids, mask, labels = completion_rows([[5, 6, 7], [8]], [[9, 10], [11, 12, 13, 14, 15]], 5, PAD)
    assert ids.tolist() == [[5, 6, 7, 9, 10], [8, 11, 12, 13, 14]]  # the second completion cut to the room left
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert labels.tolist() == [[-100, -100, -100, 9, 10], [-100, 11, 12, 13, 14]]
    ids, mask, labels = completion_rows([[5]], [[6]], 4, PAD)
    assert ids.tolist() == [[5, 6, PAD, PAD]] and mask.tolist() == [[1, 1, 0, 0]] and labels.tolist() == [[-100, 6, -100, -100]]


@pytest.mark.parametrize("bad", [dict(max_new_tokens=0), dict(temperature=0.0), dict(top_p=1.5), dict(prompt_length=0)])
def test_bad_generation_settings_are_one_line_errors(bad):
    with pytest.raises(DistillError, match="generation\\.") as error:
        GenerationSettings(**bad)
    assert "\n" not in str(error.value)


def test_a_model_without_generate_is_a_one_line_error():
    with pytest.raises(DistillError, match="cannot generate"):
        generate_completions(torch.nn.Linear(2, 2), [[1]], GenerationSettings(), eos_token_id=None, pad_token_id=0, seed=0)
