"""On-policy distillation (GKD): λ = 0 is the teacher-forced step exactly, λ = 1 labels the student's tokens,
the per-sample draw is seeded, the loss temperature is honoured on the student's samples, the teacher is never trained."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from distill import DistillationModule
from distill.errors import DistillError
from distill.lm.generation import GenerationSettings
from distill.lm.on_policy import OnPolicy
from distill.losses import TokenCrossEntropy, TokenJSD, TokenKL
from distill.models.fingerprint import weights_sha256
from tests.lm.conftest import EOS, PAD, greedy, prompt_completion_batch


def on_policy(lmbda, **generation):
    settings = GenerationSettings(**{"max_new_tokens": 5, **generation})
    return OnPolicy(lmbda=lmbda, generation=settings, seed=3, eos_token_id=EOS, pad_token_id=PAD)


def test_lambda_zero_is_exactly_the_teacher_forced_step_and_never_generates(gpt2_pair):
    teacher, student = gpt2_pair
    calls = []
    student.generate = lambda *a, **k: calls.append(1)  # would fail the step if it were called
    batch = prompt_completion_batch()
    terms = lambda: {"jsd": TokenJSD(beta=0.5, temperature=2.0), "ce": TokenCrossEntropy(0.1)}  # noqa: E731
    plain = DistillationModule(student, teacher, terms())
    mixed = DistillationModule(copy.deepcopy(student), copy.deepcopy(teacher), terms(), on_policy=on_policy(0.0))
    assert torch.equal(plain.training_step(batch, 0), mixed.training_step(batch, 0))
    assert calls == [] and mixed.on_policy.last_count == 0


def test_lambda_one_labels_exactly_the_students_generated_tokens(gpt2_pair):
    teacher, student = gpt2_pair
    batch = prompt_completion_batch()
    mixed = on_policy(1.0)(batch, student, step=0)
    assert student.training and mixed.keys() == batch.keys()
    prompts = [[5, 6, 7], [11, 12, 13, 14, 15], [17, 18]]
    for row, prompt in enumerate(prompts):
        ids, mask, labels = mixed["input_ids"][row], mixed["attention_mask"][row], mixed["labels"][row]
        completion = greedy(student.eval(), prompt, 5)
        student.train()
        end = len(prompt) + len(completion)
        assert ids[: len(prompt)].tolist() == prompt and ids[len(prompt): end].tolist() == completion
        assert labels[: len(prompt)].tolist() == [-100] * len(prompt)  # the prompt carries no loss
        assert labels[len(prompt): end].tolist() == completion  # exactly the generated tokens do
        assert labels[end:].tolist() == [-100] * (12 - end) and mask[end:].sum() == 0 and mask[:end].all()
    assert mixed["input_ids"].ne(batch["input_ids"]).any()  # the data's completions are gone


def test_the_per_sample_draw_is_seeded_and_mixes_samples_within_a_batch():
    policy = on_policy(0.5)
    assert torch.equal(policy.draw(64, step=5, rank=0), policy.draw(64, step=5, rank=0))
    assert not torch.equal(policy.draw(64, step=5, rank=0), policy.draw(64, step=6, rank=0))
    assert not torch.equal(policy.draw(64, step=5, rank=0), policy.draw(64, step=5, rank=1))  # DDP ranks differ
    draws = torch.stack([policy.draw(8, step, 0) for step in range(500)])
    mixed_batches = ((draws.sum(1) > 0) & (draws.sum(1) < 8)).float().mean()
    assert mixed_batches > 0.9  # per sample: most batches are part data, part the student's
    assert draws.float().mean() == pytest.approx(0.5, abs=0.03)
    assert on_policy(0.2).draw(20_000, 0).float().mean() == pytest.approx(0.2, abs=0.02)
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    policy.draw(8, 0)
    assert torch.equal(torch.rand(1), before)  # the global random stream (dropout, shuffles) does not move


def test_rows_not_drawn_keep_the_data_and_drawn_rows_are_the_students(gpt2_pair):
    _, student = gpt2_pair
    batch = {k: v.repeat(4, 1) for k, v in prompt_completion_batch().items()}  # 12 rows
    policy = on_policy(0.5)
    chosen = policy.draw(12, step=2)
    assert 0 < chosen.sum() < 12
    mixed = policy(batch, student, step=2)
    for row in range(12):
        same = all(torch.equal(mixed[k][row], batch[k][row]) for k in batch)
        assert same != bool(chosen[row]), row
    assert policy.last_count == int(chosen.sum())


def hand_kl(student, teacher, batch, temperature):
    """T² KL(p_T || q_T) over the loss-carrying next tokens, written out."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        t = teacher(**inputs).logits[:, :-1]
    s = student(**inputs).logits[:, :-1]
    keep = batch["labels"][:, 1:] != -100
    log_p = F.log_softmax(t[keep] / temperature, -1)
    log_q = F.log_softmax(s[keep] / temperature, -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature**2


def test_the_loss_temperature_is_honoured_on_on_policy_samples(gpt2_pair):
    """TRL's GKD ignored it: here the sampling temperature makes the tokens, the loss temperature scores them."""
    teacher, student = gpt2_pair
    batch = prompt_completion_batch()
    values = {}
    for loss_temperature in (1.0, 4.0):
        policy = on_policy(1.0, do_sample=True, temperature=1.5)
        module = DistillationModule(student, teacher, {"kd": TokenKL(temperature=loss_temperature)}, on_policy=policy)
        values[loss_temperature] = module.training_step(batch, 0)
        mixed = policy(batch, student, step=0)  # the same draw and samples: seeded by (seed, step, rank)
        assert mixed["labels"].ne(batch["labels"]).any()
        expected = hand_kl(student, teacher, mixed, loss_temperature)
        assert values[loss_temperature].item() == pytest.approx(expected.item(), rel=1e-5)
    assert values[1.0].item() != pytest.approx(values[4.0].item(), rel=1e-3)


def test_a_fit_trains_the_student_on_its_samples_and_never_the_teacher(gpt2_pair, tmp_path):
    teacher, student = gpt2_pair
    before = weights_sha256(teacher)
    student_before = copy.deepcopy(student.state_dict())
    module = DistillationModule(student, teacher, {"jsd": TokenJSD(beta=0.5)}, on_policy=on_policy(1.0),
                                optimizer=lambda params: torch.optim.SGD(params, lr=0.5))
    modes = []

    class Modes(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            modes.append((pl_module.student.training, pl_module.teacher.training, pl_module.on_policy.last_count))

    loader = torch.utils.data.DataLoader([{k: v[i] for k, v in prompt_completion_batch().items()} for i in range(3)] * 2,
                                         batch_size=3)
    L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path, callbacks=[Modes()]).fit(module, loader)
    assert modes == [(True, False, 3), (True, False, 3)]  # train mode restored after each generation
    assert weights_sha256(teacher) == before and not any(p.requires_grad for p in teacher.parameters())
    assert any(not torch.equal(student_before[k], v) for k, v in student.state_dict().items())


def test_cross_entropy_on_the_students_own_samples_is_a_one_line_error(gpt2_pair):
    teacher, student = gpt2_pair
    with pytest.raises(DistillError, match=r"'ce' \(TokenCrossEntropy\) reads no teacher.*~loss\.ce"):
        DistillationModule(student, teacher, {"jsd": TokenJSD(), "ce": TokenCrossEntropy()}, on_policy=on_policy(0.5))


def test_bad_on_policy_inputs_are_one_line_errors(gpt2_pair):
    teacher, student = gpt2_pair
    with pytest.raises(DistillError, match="lmbda must be in"):
        OnPolicy(lmbda=1.5, eos_token_id=EOS)
    with pytest.raises(DistillError, match="needs batches of input_ids and labels"):
        on_policy(1.0)(prompt_completion_batch()["input_ids"], student, 0)
    with pytest.raises(DistillError, match="teacher-output cache"):
        DistillationModule(student, teacher, {"kd": TokenKL()}, on_policy=on_policy(0.5), teacher_outputs=object())
