"""Vocabulary checks: padding rows reconciled when the tokens agree, other vocabularies refused."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from distill.data.bpe_tokenizer import bpe_tokenizer
from distill.errors import DistillError
from distill.lm.vocabulary import VocabularySlice, reconcile_vocabularies


def test_padding_rows_are_cut_to_the_shared_size(tiny_tokenizer_dir, make_gpt2):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    teacher, student = make_gpt2(320), make_gpt2(300)
    t, s, note = reconcile_vocabularies(teacher, student, tokenizer, tokenizer)
    assert isinstance(t, VocabularySlice) and s is student
    assert note == ("vocabularies reconciled: teacher 320 and student 300 output rows, the same 300 tokens; "
                    "logits cut to the shared 300 (the rest are padding rows)")
    ids = torch.tensor([[1, 2, 3]])
    teacher.eval()
    torch.testing.assert_close(t(input_ids=ids).logits, teacher(input_ids=ids).logits[..., :300], rtol=0, atol=0)
    # equal sizes: nothing to do
    same = make_gpt2(300)
    assert reconcile_vocabularies(same, student, tokenizer, tokenizer) == (same, student, None)


def test_different_vocabularies_are_one_line_errors(tiny_tokenizer_dir, tmp_path, make_gpt2):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    other = bpe_tokenizer(["completely different words here, zebra quartz"] * 3, 300, tmp_path)
    teacher, student = make_gpt2(300), make_gpt2(300)
    with pytest.raises(DistillError, match=r"different vocabularies \(300 vs \d+ tokens; token \d+ is '.+' vs '.+'\)") as info:
        reconcile_vocabularies(teacher, student, tokenizer, other)
    assert "\n" not in str(info.value)
    small = make_gpt2(290)
    with pytest.raises(DistillError, match="the student predicts 290 tokens but its tokenizer has 300"):
        reconcile_vocabularies(teacher, small, tokenizer, tokenizer)


@pytest.mark.slow  # two command lines, one of them a short training run (~40 s on 2 cores)
def test_the_command_line_reconciles_padding_rows_in_the_report_and_refuses_another_tokenizer(
        tmp_path, save_tiny_gpt2, tiny_tokenizer_dir):
    import subprocess
    import sys

    from tests.lm.conftest import TOKENIZER_TEXTS

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(10):
        (docs / f"{i}.txt").write_text(" ".join(TOKENIZER_TEXTS[i % 4:] * 2))
    other = tmp_path / "other_student"
    bpe_tokenizer(["completely different words here, zebra quartz"] * 3, 300, tmp_path / "cache-b").save_pretrained(str(other))
    for name in ("config.json", "model.safetensors"):
        (other / name).write_bytes((save_tiny_gpt2("small_student", layers=1) / name).read_bytes())

    def run(student, name):
        return subprocess.run(
            [sys.executable, "-m", "distill.run", "teacher=hf_causal_lm", f"teacher.path={save_tiny_gpt2('padded', vocab_rows=320)}",
             "student=hf_causal_lm", f"student.path={student}", "loss=lm_kd", "data=lm_text", f"data.train_file={docs}",
             "data.block_size=32", "data.batch_size=4", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
             "+trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "+report.speed=false",
             f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / name}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)

    result = run(save_tiny_gpt2("small_student", layers=1), "same")
    assert result.returncode == 0, result.stderr[-3000:]
    note = "vocabularies reconciled: teacher 320 and student 300 output rows, the same 300 tokens"
    assert f"- {note}" in (tmp_path / "same" / "report_lm.md").read_text()
    assert any(n.startswith(note) for n in json.loads((tmp_path / "same" / "report_lm.json").read_text())["notes"])

    refused = run(other, "other")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: teacher and student have different vocabularies")
