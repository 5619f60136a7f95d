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


def _batch(tokenizer):
    ids = tokenizer(["The for loop iterates", "A while"], padding="max_length", truncation=True, max_length=8, return_tensors="pt")
    return {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"]}


def test_export_language_model_checks_the_directory_it_writes(tmp_path, make_gpt2, tiny_tokenizer_dir):
    from transformers import AutoModelForCausalLM

    from distill.lm.export import export_language_model

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    torch.manual_seed(0)
    student = make_gpt2(len(tokenizer))  # train mode: exported and compared in eval mode, handed back in train mode
    result = export_language_model(student, tokenizer, tmp_path / "out", _batch(tokenizer), meta={"model": "tiny"})
    assert student.training and result["format"] == "huggingface" and result["batch_sizes"] == [2, 1]
    assert result["max_abs_diff"] <= result["tolerance"] == 1e-4
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["meta"] == {"model": "tiny"} and record["path"] == str(tmp_path / "out")
    # an independent load: the same logits as the model in eval mode
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out")).eval()
    batch = _batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, student.eval()(**batch).logits, rtol=0, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.json"]  # no staging directory left


def test_export_language_model_that_does_not_match_leaves_the_old_directory(tmp_path, make_gpt2, tiny_tokenizer_dir,
                                                                            monkeypatch):
    import transformers

    from distill.errors import DistillError
    from distill.lm.export import export_language_model

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    old = tmp_path / "out"
    old.mkdir()
    (old / "keep.txt").write_text("an earlier export")
    original = transformers.AutoModelForCausalLM.from_pretrained

    def perturbed(*args, **kwargs):
        model = original(*args, **kwargs)
        with torch.no_grad():
            model.lm_head.weight.add_(1e-2 * torch.randn_like(model.lm_head.weight))  # every logit moves
        return model

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", perturbed)
    with pytest.raises(DistillError, match=r"does not compute what the PyTorch model computes: .* > tolerance 0.0001; nothing"):
        export_language_model(make_gpt2(len(tokenizer)), tokenizer, old, _batch(tokenizer))
    assert [p.name for p in old.iterdir()] == ["keep.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
