"""Token losses normalised by the loss tokens of the whole global batch (gradient accumulation, DDP)."""

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from distill.errors import DistillError
from distill.losses import StepOutputs, TokenCrossEntropy, TokenKL
from distill.losses.functional import global_token_normalizer, token_kl_loss

IGNORE = -100
VOCAB = 11


def _micro_batch(seed, batch, length, prompt):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, length, VOCAB, generator=g)
    teacher = torch.randn(batch, length, VOCAB, generator=g)
    labels = torch.randint(0, VOCAB, (batch, length), generator=g)
    labels[:, :prompt] = IGNORE
    return student, teacher, labels


def _tokens(labels):
    return int((labels[:, 1:] != IGNORE).sum())


# micro-batches with very different numbers of loss tokens (a local mean would weight them wrongly)
MICRO = [_micro_batch(0, 2, 8, prompt=6), _micro_batch(1, 3, 8, prompt=1), _micro_batch(2, 1, 8, prompt=3),
         _micro_batch(3, 2, 8, prompt=0)]


def _concatenated(parts):
    return tuple(torch.cat(tensors) for tensors in zip(*parts))


def test_normalizer_formula():
    assert global_token_normalizer(120, accumulate_grad_batches=2, world_size=3) == 20
    assert global_token_normalizer(torch.tensor(10.0)).item() == 10.0
    with pytest.raises(DistillError, match="accumulate_grad_batches"):
        global_token_normalizer(10, accumulate_grad_batches=0)


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_two_accumulated_micro_batches_give_the_concatenated_loss_and_gradient(chunk_size):
    parts = MICRO[:2]
    total_tokens = sum(_tokens(labels) for _, _, labels in parts)
    normalizer = global_token_normalizer(total_tokens, accumulate_grad_batches=2)
    students = [s.clone().requires_grad_(True) for s, _, _ in parts]
    # Lightning divides each micro-batch's loss by accumulate_grad_batches before backward
    accumulated = sum(
        token_kl_loss(s, t, y, chunk_size=chunk_size, normalizer=normalizer) / 2
        for s, (_, t, y) in zip(students, parts)
    )
    accumulated.backward()

    whole_student, whole_teacher, whole_labels = _concatenated(parts)
    whole_student.requires_grad_(True)
    whole = token_kl_loss(whole_student, whole_teacher, whole_labels)
    whole.backward()

    torch.testing.assert_close(accumulated, whole)
    torch.testing.assert_close(torch.cat([s.grad for s in students]), whole_student.grad)

    # the per-micro-batch mean (no normalizer) is not the same objective here
    local = sum(token_kl_loss(s, t, y) / 2 for s, t, y in parts)
    assert abs(local.item() - whole.item()) > 1e-3


def test_accumulation_times_processes_gives_the_global_per_token_mean():
    """2 simulated processes x 2 micro-batches each; DDP averages the processes' gradients."""
    ranks = [MICRO[:2], MICRO[2:]]
    total_tokens = sum(_tokens(labels) for _, _, labels in MICRO)
    normalizer = global_token_normalizer(total_tokens, accumulate_grad_batches=2, world_size=2)
    students = [s.clone().requires_grad_(True) for s, _, _ in MICRO]
    rank_losses = []
    for rank, parts in enumerate(ranks):
        mine = students[2 * rank : 2 * rank + 2]
        rank_losses.append(sum(token_kl_loss(s, t, y, normalizer=normalizer) / 2 for s, (_, t, y) in zip(mine, parts)))
    (sum(rank_losses) / 2).backward()  # the DDP average over 2 processes

    whole_student, whole_teacher, whole_labels = _concatenated(MICRO)
    whole_student.requires_grad_(True)
    whole = token_kl_loss(whole_student, whole_teacher, whole_labels)
    whole.backward()
    torch.testing.assert_close(sum(rank_losses) / 2, whole)
    torch.testing.assert_close(torch.cat([s.grad for s in students]), whole_student.grad)


def test_terms_read_the_normalizer_from_the_step_outputs():
    parts = MICRO[:2]
    normalizer = global_token_normalizer(sum(_tokens(y) for _, _, y in parts), accumulate_grad_batches=2)
    for term in (TokenKL(chunk_size=2), TokenCrossEntropy()):
        values = []
        for s, t, y in parts:
            outputs = StepOutputs(student=s, teacher=t, labels=y)
            outputs.token_normalizer = normalizer
            values.append(term(outputs) / 2)
        s, t, y = _concatenated(parts)
        torch.testing.assert_close(sum(values), term(StepOutputs(student=s, teacher=t, labels=y)))


class _TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, VOCAB)

    def forward(self, input_ids):
        return self.embed(input_ids)


class _AccumulatingModule(L.LightningModule):
    """A test-only module that supplies the global normalizer, as the distillation module must."""

    def __init__(self, normalizer):
        super().__init__()
        self.model = _TinyLM()
        self.term = TokenCrossEntropy(chunk_size=2)
        self.normalizer = normalizer

    def training_step(self, batch, batch_idx):
        input_ids, labels = batch
        outputs = StepOutputs(student=self.model(input_ids), labels=labels)
        outputs.token_normalizer = self.normalizer
        return self.term(outputs)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1.0)


def test_lightning_gradient_accumulation_with_the_normalizer_matches_one_big_batch(tmp_path):
    g = torch.Generator().manual_seed(7)
    ids = [torch.randint(0, VOCAB, (2, 6), generator=g) for _ in range(2)]
    labels = [i.clone() for i in ids]
    labels[0][:, :5] = IGNORE  # 1 loss token per row
    labels[1][:, :1] = IGNORE  # 4 loss tokens per row
    total_tokens = sum(_tokens(y) for y in labels)

    def one_step(normalizer):
        torch.manual_seed(0)
        module = _AccumulatingModule(normalizer)
        start = module.model.embed.weight.detach().clone()
        trainer = L.Trainer(
            max_steps=1, accumulate_grad_batches=2, accelerator="cpu", devices=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=tmp_path,
        )
        # batch_size=None: each item is already a micro-batch
        trainer.fit(module, train_dataloaders=DataLoader(list(zip(ids, labels)), batch_size=None))
        return start, module.model.embed.weight.detach()

    start, after = one_step(global_token_normalizer(total_tokens, accumulate_grad_batches=2))
    _, after_local_means = one_step(None)

    # one SGD step (lr 1) on the per-token mean of the concatenated batch, by hand
    reference = _TinyLM()
    reference.embed.weight.data.copy_(start)
    logits = reference(torch.cat(ids))
    whole_labels = torch.cat(labels)
    targets = whole_labels[:, 1:]
    mask = targets != IGNORE
    loss = nn.functional.cross_entropy(logits[:, :-1][mask], targets[mask])
    loss.backward()
    torch.testing.assert_close(after, start - reference.embed.weight.grad)
    # each micro-batch's own token mean weights the 2 tokens of the first as much as the 8 of the second
    assert not torch.allclose(after_local_means, after, atol=1e-4)


def test_a_non_positive_normalizer_is_a_one_line_error():
    s, t, y = MICRO[0]
    with pytest.raises(DistillError, match="normalizer must be > 0"):
        token_kl_loss(s, t, y, normalizer=0)
