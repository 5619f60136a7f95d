"""LoRA self-distillation: the teacher is the student's base with adapters disabled, one copy of the weights."""

from __future__ import annotations

import copy

import pytest
import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch.utils.data import DataLoader

from distill import DistillationModule
from distill.batch import split_batch
from distill.errors import DistillError
from distill.losses import TokenKL
from distill.models.fingerprint import weights_sha256
from distill.models.gradient_checkpointing import enable_gradient_checkpointing, is_checkpointing
from distill.models.lora import with_lora
from distill.teachers.adapters_disabled import AdaptersDisabled
from distill.teachers.sharded import shard_for_forward

VOCAB = 64


def batches(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (count, 2, 10), generator=generator)
    return [{"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x} for x in ids]


@pytest.fixture
def base_and_student(make_gpt2):
    """A base model (dropout 0.1), an untouched copy of it, and the LoRA student on it with adapters that matter."""
    torch.manual_seed(0)
    base = make_gpt2(VOCAB, layers=2)
    original = copy.deepcopy(base).eval()
    student = with_lora(base, r=4, dropout=0.1)
    with torch.no_grad():
        for name, p in student.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    return original, student


def test_the_teacher_gives_the_base_models_outputs_in_eval_mode(base_and_student):
    original, student = base_and_student
    module = DistillationModule(student, AdaptersDisabled(student), {"kd": TokenKL()})
    module.train()
    batch = batches(1)[0]
    teacher_logits, _ = module.live_teacher.outputs(split_batch(batch), torch.device("cpu"), first_batch=True)
    with torch.no_grad():
        expected = original(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        student_logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(teacher_logits, expected, rtol=0, atol=0)
    assert (student_logits - expected).abs().max() > 1e-2  # the student (adapters on) is another model
    # the student is back in train mode after the teacher ran (dropout on again), adapters enabled
    assert student.training and all(m.training for m in student.modules())


def test_one_copy_of_the_weights_and_the_teacher_never_changes(base_and_student, fast_trainer):
    original, student = base_and_student
    teacher = AdaptersDisabled(student)
    assert list(teacher.parameters()) == []  # it owns nothing: freezing it cannot freeze the adapters
    # the teacher's weights are the student's own tensors (the same storage), not a second copy
    student_storage = {p.untyped_storage().data_ptr() for p in student.parameters()}
    assert {t.untyped_storage().data_ptr() for t in teacher.state_dict().values()} <= student_storage
    assert teacher.base_parameters().keys() == {n for n, _ in original.named_parameters()}
    assert not any("lora_" in k for k in teacher.state_dict())

    module = DistillationModule(student, teacher, {"kd": TokenKL(temperature=2.0)},
                                optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2))
    sha = weights_sha256(teacher)
    assert sha == weights_sha256(original) != weights_sha256(student)  # the hash is the base weights'
    adapters_before = {n: p.clone() for n, p in student.named_parameters() if p.requires_grad}
    fast_trainer(max_steps=3, limit_val_batches=0).fit(module, train_dataloaders=DataLoader(batches(3), batch_size=None))
    assert weights_sha256(module.teacher) == sha  # (on_fit_end checks the same and would have raised)
    base_now = teacher.base_parameters()
    for name, p in original.named_parameters():
        assert torch.equal(base_now[name], p), name
    assert any(not torch.equal(p, adapters_before[n]) for n, p in student.named_parameters() if p.requires_grad)


def test_with_checkpointing_the_teacher_is_unchanged_and_the_student_stays_checkpointed(base_and_student):
    original, student = base_and_student
    enable_gradient_checkpointing(student.get_base_model())
    module = DistillationModule(student, AdaptersDisabled(student), {"kd": TokenKL()})
    assert is_checkpointing(student)  # freezing the teacher (which turns checkpointing off there) left the student's on
    module.train()
    batch = batches(1)[0]
    teacher_logits, _ = module.live_teacher.outputs(split_batch(batch), torch.device("cpu"), first_batch=True)
    with torch.no_grad():
        torch.testing.assert_close(teacher_logits, original(input_ids=batch["input_ids"]).logits, rtol=0, atol=0)
    module.training_step(batch, 0).backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)


def test_a_student_without_adapters_or_a_teacher_dtype_is_refused_and_fsdp_leaves_the_teacher_alone(make_gpt2, base_and_student):
    with pytest.raises(DistillError, match="needs a LoRA student, got a GPT2LMHeadModel; give the student adapters"):
        AdaptersDisabled(make_gpt2(VOCAB))
    teacher = AdaptersDisabled(base_and_student[1])
    assert shard_for_forward(teacher, FSDPStrategy()) is teacher  # sharded with the student, as part of it
    with pytest.raises(DistillError, match="cannot be kept in torch.bfloat16 apart from the student"):
        DistillationModule(base_and_student[1], teacher, {"kd": TokenKL()}, teacher_dtype="bfloat16")


# -- the command line: teacher=student_base ------------------------------------------------------------------


@pytest.mark.slow  # a whole LM job in-process (tokenizer, data, training, report): ~10 s on 2 cores
def test_teacher_student_base_runs_lora_self_distillation_end_to_end(tmp_path, tiny_tokenizer_dir):
    import json

    from distill.cli.lm_models import STUDENT_BASE_SOURCE
    from tests.lm.test_lm_generation_run import run_in_process, tiny

    overrides = ["experiment=lm", "teacher=student_base", "student.lora.r=4", *tiny(tmp_path, tiny_tokenizer_dir)]
    overrides = [o for o in overrides if not o.startswith("teacher.")]  # the tiny teacher's settings: no teacher to build
    cfg, summary = run_in_process(tmp_path, overrides)
    teacher = summary["teacher"]
    assert (teacher["name"], teacher["origin"], teacher["source"]) == ("student base", "student", STUDENT_BASE_SOURCE)
    # nothing was trained first or cached for the teacher, and the base weights it runs on never changed
    assert not (tmp_path / "cache" / "teachers").exists()
    assert teacher["sha256"] == teacher["sha256_after"]
    # the teacher is the student's base: the student's exported (merged) weights differ from it only by the adapters
    report = json.loads((tmp_path / "run" / "report_lm.json").read_text())
    rows = {row["role"]: row for row in report["rows"]}
    lora_parameters = rows["student"]["parameters"] - rows["teacher"]["parameters"]
    # GPT-2's c_attn gets LoRA by default: per layer r * (n_embd + 3 * n_embd) = 4 * (8 + 24) = 128 for 1 layer
    assert lora_parameters == 4 * (8 + 3 * 8), rows
    assert teacher["perplexity"] > 0 and summary["student"]["kl"] >= 0

    # distill.evaluate rebuilds that teacher (the run's student config and seed), checked by its hash: same numbers
    from omegaconf import OmegaConf, open_dict

    from distill.cli.lm_saved_run import evaluate_language_model

    with open_dict(cfg):
        del cfg["hydra"]
    (tmp_path / "run" / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / "run" / ".hydra" / "config.yaml")
    (tmp_path / "evaluation").mkdir()
    again = evaluate_language_model(OmegaConf.create({"checkpoint": str(tmp_path / "run" / "student_model")}), [],
                                    tmp_path / "evaluation")
    again_rows = {row["role"]: row for row in again["rows"]}
    assert again_rows["teacher"]["perplexity"] == pytest.approx(rows["teacher"]["perplexity"], rel=1e-5)
    assert again_rows["student"]["kl"] == pytest.approx(rows["student"]["kl"], rel=1e-4, abs=1e-6)
    summary_file = tmp_path / "run" / "summary.json"
    written = json.loads(summary_file.read_text())
    written["teacher"]["sha256"] = "0" * 64  # another base model: refused, not compared against silently
    summary_file.write_text(json.dumps(written))
    with pytest.raises(DistillError, match="teacher=student_base.*cannot be rebuilt: the rebuilt base weights differ"):
        evaluate_language_model(OmegaConf.create({"checkpoint": str(tmp_path / "run" / "student_model")}), [],
                                tmp_path / "evaluation")


def test_teacher_student_base_without_a_lora_student_is_one_line(tmp_path, tiny_tokenizer_dir):
    from tests.lm.test_lm_generation_run import run_in_process, tiny

    overrides = [o for o in tiny(tmp_path, tiny_tokenizer_dir) if not o.startswith("teacher.")]
    with pytest.raises(DistillError, match=r"needs a LoRA student, got a GPT2LMHeadModel; give the student adapters \(student.lora.r=8\)"):
        run_in_process(tmp_path, ["experiment=lm", "teacher=student_base", *overrides])


def test_teacher_student_base_on_a_classifier_run_is_one_line():
    from hydra import compose, initialize_config_dir

    from distill.cli.config_directory import config_dir
    from distill.cli.teachers import check_teacher_names

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["teacher=student_base"])
    with pytest.raises(DistillError, match="teacher=student_base .* is for language models; use it with experiment=lm"):
        check_teacher_names(cfg.teacher)
