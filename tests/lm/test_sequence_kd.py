"""Sequence-level KD (Kim & Rush 2016): the teacher completes each prompt once, the completions are cached under
a key of everything that makes them, the student trains on them with loss on the completion only."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from distill import DistillationModule
from distill.data import LanguageModelDataModule
from distill.errors import DistillError
from distill.lm.generation import GenerationSettings
from distill.lm.sequence_kd import SequenceKD
from distill.losses import TokenCrossEntropy
from tests.lm.conftest import greedy
from tests.lm.conftest import tiny_gpt2


def data(pairs_file):
    return LanguageModelDataModule(train_file=str(pairs_file / "pairs.jsonl"), tokenizer=str(pairs_file / "tokenizer"),
                                   block_size=16, batch_size=4, val_fraction=0.2, test_fraction=0.2)


def counting(model):
    """``model`` whose ``generate`` counts the prompts (rows) it is called on."""
    calls = []
    original = model.generate

    def generate(*args, **kwargs):
        calls.append(len(kwargs["input_ids"]))
        return original(*args, **kwargs)

    model.generate = generate
    return calls


def seq_kd(**generation):
    return SequenceKD(GenerationSettings(**{"max_new_tokens": 6, **generation}), batch_size=4, device="cpu")


def test_the_teacher_completes_each_prompt_once_over_several_epochs(pairs_file, tmp_path):
    datamodule = data(pairs_file)
    vocab = datamodule.num_classes
    teacher, student = tiny_gpt2(seed=1, vocab=vocab).eval(), tiny_gpt2(seed=2, vocab=vocab)
    calls = counting(teacher)
    prompts = len(datamodule.datasets["train"])
    original = seq_kd().apply(datamodule, teacher, tmp_path / "cache")
    seen = []

    class Batches(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(batch["labels"])

    module = DistillationModule(student, teacher, {"ce": TokenCrossEntropy()})
    L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0, callbacks=[Batches()]).fit(module, datamodule=datamodule)
    assert sum(calls) == prompts and len(seen) == 3 * -(-prompts // 4)  # generated once, trained on for 3 epochs
    trained = {tuple(t for t in row.tolist() if t != -100) for labels in seen for row in labels}
    assert trained == {tuple(c for c in labels if c != -100) for _, labels in datamodule.datasets["train"].examples}
    assert len(original) == prompts and original != datamodule.datasets["train"].examples
    # a second run with the same teacher, prompts and settings reads the cache: no generation at all
    again = data(pairs_file)
    seq_kd().apply(again, teacher, tmp_path / "cache")
    # the file holds each prompt beside its completion: together they are what the student trains on
    (path,) = (tmp_path / "cache" / "sequence_kd").glob("*.pt")
    stored = torch.load(path, weights_only=True)
    pairs = [(p + c, [-100] * len(p) + c) for p, c in zip(stored["prompts"], stored["completions"]) if c]
    assert pairs == datamodule.datasets["train"].examples and len(stored["prompts"]) == prompts
    assert sum(calls) == prompts and again.datasets["train"].examples == datamodule.datasets["train"].examples


def test_the_student_trains_on_prompt_plus_the_teachers_completion_with_loss_on_the_completion_only(pairs_file, tmp_path):
    datamodule = data(pairs_file)
    teacher = tiny_gpt2(seed=1, vocab=datamodule.num_classes).eval()
    originals = list(datamodule.datasets["train"].examples)
    made = seq_kd().examples(teacher, originals, datamodule.tokenizer, 16, tmp_path)
    eos = datamodule.tokenizer.eos_token_id
    for (ids, labels), (data_ids, data_labels) in zip(made, originals):
        prompt_length = next(i for i, label in enumerate(data_labels) if label != -100 and i > 0)
        prompt = data_ids[:prompt_length]
        completion = greedy(teacher, prompt, min(6, 16 - len(prompt)), eos)
        assert ids == prompt + completion and labels == [-100] * len(prompt) + completion


def test_a_different_teacher_prompt_set_or_setting_is_generated_anew_never_mixed(pairs_file, tmp_path):
    datamodule = data(pairs_file)
    vocab, tokenizer = datamodule.num_classes, datamodule.tokenizer
    examples = list(datamodule.datasets["train"].examples)
    teacher, other = tiny_gpt2(seed=1, vocab=vocab), tiny_gpt2(seed=5, vocab=vocab)
    calls, other_calls = counting(teacher), counting(other)
    first = seq_kd().examples(teacher, examples, tokenizer, 16, tmp_path)
    assert seq_kd().examples(other, examples, tokenizer, 16, tmp_path) != first and sum(other_calls) == len(examples)
    seq_kd(max_new_tokens=3).examples(teacher, examples, tokenizer, 16, tmp_path)
    seq_kd(do_sample=True, temperature=2.0).examples(teacher, examples, tokenizer, 16, tmp_path)
    seq_kd(prompt_length=2).examples(teacher, examples, tokenizer, 16, tmp_path)
    seq_kd().examples(teacher, examples[:-1], tokenizer, 16, tmp_path)
    assert sum(calls) == len(examples) * 4 + len(examples) - 1
    assert len(list((tmp_path / "sequence_kd").glob("*.pt"))) == 6
    assert seq_kd().examples(teacher, examples, tokenizer, 16, tmp_path) == first  # the first file, still as it was


def test_a_cache_file_that_does_not_match_its_key_is_a_one_line_error(pairs_file, tmp_path):
    datamodule = data(pairs_file)
    teacher = tiny_gpt2(seed=1, vocab=datamodule.num_classes)
    examples, tokenizer = list(datamodule.datasets["train"].examples), datamodule.tokenizer
    seq_kd().examples(teacher, examples, tokenizer, 16, tmp_path)
    (path,) = (tmp_path / "sequence_kd").glob("*.pt")
    stored = torch.load(path, weights_only=True)
    stored["manifest"]["teacher_sha256"] = "0" * 64
    torch.save(stored, path)
    with pytest.raises(DistillError, match=r"was written for another teacher_sha256 than this run's; delete it") as error:
        seq_kd().examples(teacher, examples, tokenizer, 16, tmp_path)
    assert "\n" not in str(error.value)
    path.write_bytes(b"not a torch file")
    stored["manifest"]["teacher_sha256"] = SequenceKD().manifest(teacher, tokenizer, stored["prompts"], 16)["teacher_sha256"]
    stored["prompts"][0] = stored["prompts"][0][:-1]  # the manifest right, a prompt not: still refused
    torch.save(stored, path)
    with pytest.raises(DistillError, match=r"holds other prompts than this run's; delete it") as error:
        seq_kd().examples(teacher, examples, tokenizer, 16, tmp_path)
    assert "\n" not in str(error.value)
    path.write_bytes(b"not a torch file")
    with pytest.raises(DistillError, match="cannot read the sequence-KD cache .* delete it"):
        seq_kd().examples(teacher, examples, tokenizer, 16, tmp_path)
