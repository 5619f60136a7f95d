"""The global token normalizer the module sets under DDP: its value, when it is set, and a single process unchanged.

The real two-process run (gloo, Lightning's DDP) is the ``ddp-2-processes`` case of test_path_equivalence.py;
here the other ranks are stood in for by a strategy whose ``reduce`` adds their token counts.
"""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from distill import DistillationModule
from distill.errors import DistillError
from distill.lm.ddp_token_normalizer import set_token_normalizer
from distill.losses import KD, StepOutputs, TokenCrossEntropy, TokenKL
from tests.lm.ddp_token_normalizer_run import dataset, models, terms
from tests.lm.test_path_equivalence import whole_batch

VOCAB = 11


class OtherRanks:
    """A strategy's ``reduce(sum)`` when the other ranks hold ``tokens`` loss tokens; records what it was given."""

    def __init__(self, tokens: int) -> None:
        self.tokens, self.given = tokens, []

    def reduce(self, tensor, reduce_op):
        assert reduce_op == "sum"
        self.given.append(tensor.clone())
        return tensor + self.tokens


class NoCollective:
    def reduce(self, tensor, reduce_op):
        raise AssertionError("a single process must not run a collective")


def trainer(world_size, strategy):
    return SimpleNamespace(world_size=world_size, strategy=strategy)


def outputs(seed=0, batch=3, length=7, prompt=(2, 5, 0)):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, VOCAB, (batch, length), generator=g)
    for row, n in enumerate(prompt):
        labels[row, :n] = -100
    return StepOutputs(student=torch.randn(batch, length, VOCAB, generator=g),
                       teacher=torch.randn(batch, length, VOCAB, generator=g), labels=labels)


def test_the_normalizer_is_the_global_token_count_over_the_world_size():
    step = outputs()
    local = 5 + 2 + 6  # the next-token targets labels[:, 1:] (6 a row) outside each row's prompt of 2, 5, 0
    strategy = OtherRanks(tokens=27)  # 3 other ranks holding 27 loss tokens in all
    set_token_normalizer(step, {"kd": TokenKL(temperature=2.0), "ce": TokenCrossEntropy()}, trainer(4, strategy))
    assert [int(t) for t in strategy.given] == [local]  # one all-reduce for all the terms
    assert float(step.token_normalizer) == (local + 27) / 4

    # a term then divides its summed loss by that normalizer (here by hand: the summed forward KL at T=2, times T²)
    log_p = F.log_softmax(step.teacher[:, :-1] / 2, -1)
    log_q = F.log_softmax(step.student[:, :-1] / 2, -1)
    mask = step.labels[:, 1:] != -100
    summed = (log_p.exp() * (log_p - log_q)).sum(-1)[mask].sum() * 4
    torch.testing.assert_close(TokenKL(temperature=2.0)(step), summed / ((local + 27) / 4))


def test_a_global_batch_without_loss_tokens_divides_by_one():
    step = outputs(prompt=(7, 7, 7))
    set_token_normalizer(step, {"kd": TokenKL()}, trainer(2, OtherRanks(tokens=0)))
    assert float(step.token_normalizer) == 0.5  # 1 / world_size: every term sums to 0 anyway
    assert TokenKL()(step) == 0


@pytest.mark.parametrize("case", ["single process", "no trainer", "no token term", "no labels"])
def test_nothing_is_set_and_no_collective_runs_when_the_normalizer_is_not_needed(case):
    step = outputs()
    loss = {"kd": KD()} if case == "no token term" else {"kd": TokenKL()}
    if case == "no labels":
        step.labels = None
    world = None if case == "no trainer" else trainer(1 if case == "single process" else 2, NoCollective())
    set_token_normalizer(step, loss, world)
    assert step.token_normalizer is None


def test_token_terms_with_different_ignore_values_are_a_one_line_error():
    with pytest.raises(DistillError, match="give them the same ignore_index") as error:
        set_token_normalizer(outputs(), {"kd": TokenKL(), "ce": TokenCrossEntropy(ignore_index=-1)},
                             trainer(2, OtherRanks(0)))
    assert "\n" not in str(error.value)


def test_a_single_process_fit_is_bit_identical_to_the_step_by_hand(tmp_path):
    """Under a one-device Trainer nothing is set: the weights after one SGD step equal the hand step's exactly."""
    teacher, student = models()
    fitted = DistillationModule(student, teacher, terms(), optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    fitted.record_steps = True
    teacher, student = models()
    by_hand = DistillationModule(student, teacher, terms())
    L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
              limit_val_batches=0).fit(fitted, DataLoader(dataset(), batch_size=4))
    assert fitted.last_step[0].token_normalizer is None

    optimizer = torch.optim.SGD(by_hand.student.parameters(), lr=0.1)
    by_hand.training_step(whole_batch(), 0).backward()
    optimizer.step()
    for (name, got), want in zip(fitted.student.state_dict().items(), by_hand.student.state_dict().values()):
        assert torch.equal(got, want), name
