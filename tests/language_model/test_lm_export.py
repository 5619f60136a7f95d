"""An LM student exported as a save_pretrained directory loads and generates in a fresh process."""

from __future__ import annotations

import pytest

import json
import subprocess
import sys

import torch
from transformers import AutoTokenizer

from distill.lm.export import save_language_model
from distill.lm.vocabulary import VocabularySlice

FRESH = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
ids = tokenizer("The for loop", return_tensors="pt")["input_ids"]
out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False,
                     pad_token_id=tokenizer.pad_token_id)
print(json.dumps({"ids": ids[0].tolist(), "generated": out[0].tolist(), "logits": model(input_ids=ids).logits[0, -1].tolist()}))
"""


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_exported_student_generates_in_a_fresh_process(tmp_path, make_gpt2, tiny_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    torch.manual_seed(0)
    student = make_gpt2(300).eval()
    folder = save_language_model(VocabularySlice(student, 300), tokenizer, tmp_path / "student")  # the wrapper is dropped
    result = subprocess.run([sys.executable, "-c", FRESH, str(folder)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    ids = torch.tensor([seen["ids"]])
    with torch.no_grad():
        expected = student.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
        logits = student(input_ids=ids).logits[0, -1]
    assert seen["generated"] == expected[0].tolist() and len(seen["generated"]) == len(seen["ids"]) + 5
    torch.testing.assert_close(torch.tensor(seen["logits"]), logits, rtol=1e-5, atol=1e-5)
