"""Vocabulary checks: padding rows reconciled when the tokens agree, other vocabularies refused."""

from __future__ import annotations

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
