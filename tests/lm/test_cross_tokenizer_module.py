"""DistillationModule with a teacher of another tokenizer: the teacher reads its own tokens, the terms the alignment."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from distill.batch import split_batch
from distill.data.lm_text import LanguageModelDataModule
from distill.lm.shared_vocabulary import shared_vocabulary
from distill.losses import TokenCrossEntropy, TokenExactMatchKL, TokenULD
from distill.losses.functional.token_cross_tokenizer import token_uld_loss
from distill.module import DistillationModule

from .conftest import TOKENIZER_TEXTS as TEXTS


@pytest.fixture(scope="module")
def cross_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross-lm")
    (root / "docs").mkdir()
    for i, text in enumerate(TEXTS):
        (root / "docs" / f"{i}.txt").write_text(text + " " + text)
    return LanguageModelDataModule(str(root / "docs"), vocab_size=300, teacher_vocab_size=330, block_size=16,
                                   teacher_block_size=14, batch_size=2, cache_dir=str(root / "cache"),
                                   val_fraction=0.2, test_fraction=0.2)


def _module(cross_data, make_gpt2):
    torch.manual_seed(0)
    student, teacher = make_gpt2(300), make_gpt2(330, layers=1)
    exact = TokenExactMatchKL(shared_vocabulary=shared_vocabulary(cross_data.tokenizer, cross_data.teacher_tokenizer))
    loss = {"uld": TokenULD(temperature=2.0), "exact": exact, "ce": TokenCrossEntropy(weight=0.1)}
    return DistillationModule(student, teacher, loss, optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3)), student, teacher


def test_split_batch_takes_the_teachers_inputs_and_the_alignment_out(cross_data):
    batch = next(iter(cross_data.train_dataloader()))
    parts = split_batch(batch)
    assert set(parts.kwargs) == {"input_ids", "attention_mask"} and parts.alignment is batch["alignment"]
    teacher = parts.for_teacher()
    assert teacher.kwargs["input_ids"] is batch["teacher_input_ids"] and set(teacher.kwargs) == {"input_ids", "attention_mask"}
    plain = split_batch({"input_ids": batch["input_ids"], "labels": batch["labels"]})
    assert plain.for_teacher() is plain and plain.alignment is None


def test_the_teacher_runs_on_its_own_tokens_and_the_loss_is_the_aligned_one(cross_data, make_gpt2):
    module, student, teacher = _module(cross_data, make_gpt2)
    batch = next(iter(cross_data.train_dataloader()))
    seen = []
    handle = teacher.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs["input_ids"]), with_kwargs=True)
    outputs = module._run_models(batch, with_teacher=True)
    handle.remove()
    assert len(seen) == 1 and torch.equal(seen[0], batch["teacher_input_ids"])
    assert outputs.teacher.shape == (2, 14, 330) and outputs.student.shape == (2, 16, 300)
    student.eval()
    with torch.no_grad():
        s_logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        t_logits = teacher(input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"]).logits
        expected = token_uld_loss(s_logits, t_logits, batch["alignment"], batch["labels"], temperature=2.0)
        got = module.loss_terms["uld"](module._run_models(batch, with_teacher=True))
    assert got.item() == pytest.approx(expected.item(), abs=1e-6) and expected.item() > 0


def test_training_and_validation_run_without_comparing_the_vocabularies(cross_data, make_gpt2, tmp_path):
    module, student, _ = _module(cross_data, make_gpt2)
    before = [p.detach().clone() for p in student.parameters()]
    trainer = L.Trainer(fast_dev_run=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=cross_data)
    metrics = trainer.callback_metrics
    assert {"train/loss/uld", "train/loss/exact", "val/loss/uld", "val/acc"} <= set(metrics)
    assert "val/agreement" not in metrics and "val/teacher_acc" not in metrics
    assert all(torch.isfinite(metrics[k]) for k in ("train/loss/uld", "train/loss/exact", "val/acc"))
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))


def test_the_lm_job_refuses_terms_that_cannot_work_across_or_within_one_tokenizer(cross_data):
    from types import SimpleNamespace

    from distill.cli.lm_cross_tokenizer import check_cross_tokenizer_terms
    from distill.errors import DistillError
    from distill.losses import TokenKL

    check_cross_tokenizer_terms({"uld": TokenULD(), "ce": TokenCrossEntropy()}, cross_data)
    with pytest.raises(DistillError, match="compares the two vocabularies token by token.*loss=lm_uld"):
        check_cross_tokenizer_terms({"kd": TokenKL()}, cross_data)
    with pytest.raises(DistillError, match="data.teacher_vocab_size=N"):
        check_cross_tokenizer_terms({"uld": TokenULD()}, SimpleNamespace(cross_tokenizer=False))
