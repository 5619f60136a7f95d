"""``python -m distill.run experiment=lm loss=lm_uld data.teacher_vocab_size=N``: a teacher with another BPE, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import TOKENIZER_TEXTS as TEXTS
from .test_lm_run import TINY_LM

pytestmark = pytest.mark.slow  # a subprocess that trains a teacher first: ~a minute under load on 2 cores


def _documents(tmp_path):
    """A folder of plain-text documents the two BPE tokenizers are trained on."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(TEXTS * 2):
        (docs / f"{i}.txt").write_text(f"{text} {text}")
    return docs


def test_a_teacher_with_a_larger_bpe_is_trained_then_distilled_with_uld(tmp_path):
    docs = _documents(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY_LM, "loss=lm_uld", f"data.train_file={docs}", "data.vocab_size=300",
         "data.teacher_vocab_size=330", "data.val_fraction=0.2", "data.test_fraction=0.2", "data.batch_size=4",
         "baseline=true", f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["cross_tokenizer"] and summary["teacher"]["vocabulary"] == 330 and summary["student"]["vocabulary"] == 300
    assert summary["teacher"]["sha256"] == summary["teacher"]["sha256_after"] and summary["teacher"]["origin"] == "trained"
    assert set(summary["loss"]) == {"uld", "exact", "ce"} and "shared_tokens=" in summary["loss"]["exact"]
    assert "different tokenizers" in (tmp_path / "run" / "report_lm.md").read_text()
    assert (tmp_path / "run" / "student_model" / "config.json").is_file()
    # baseline=true: the student trained alone, measured on the student's own tokens, next to it
    rows = {row["role"]: row for row in json.loads((tmp_path / "run" / "report_lm.json").read_text())["rows"]}
    assert set(rows) == {"teacher", "student", "baseline"} and rows["baseline"]["vocabulary"] == 300
    assert summary["baseline"]["perplexity"] == rows["baseline"]["perplexity"] > 1
    verdict = "lower" if rows["student"]["perplexity"] < rows["baseline"]["perplexity"] else "not lower"
    assert f"the student trained alone: perplexity {rows['baseline']['perplexity']:.1f} on the same tokens (distilled: {verdict})" \
        in summary["line"]
    assert (tmp_path / "cache" / "baselines").is_dir()
    # distill.evaluate on the saved student: each model on its own tokens again, the teacher from the run's cache
    evaluate = [sys.executable, "-m", "distill.evaluate", f"checkpoint={tmp_path / 'run' / 'student_model'}",
                f"out_dir={tmp_path / 'eval'}", f"hydra.run.dir={tmp_path / 'eval'}"]
    evaluated = subprocess.run(evaluate, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    again = {row["role"]: row for row in json.loads((tmp_path / "eval" / "report_lm.json").read_text())["rows"]}
    assert again["teacher"]["vocabulary"] == 330 and again["student"]["vocabulary"] == 300
    for role in ("teacher", "student"):
        assert again[role]["perplexity"] == pytest.approx(rows[role]["perplexity"], rel=1e-4), role
    refused = subprocess.run([*evaluate, "per_sample=true"], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                             check=False)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1].startswith(
        "error: per_sample=true compares the two models token by token"), refused.stderr[-2000:]
    # the teacher's cache key is its own tokenization's: a plain run with that BPE finds the same teacher
    plain = subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY_LM, f"data.train_file={docs}", "data.vocab_size=330",
         "data.val_fraction=0.2", "data.test_fraction=0.2", "data.batch_size=4",
         f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'plain'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["teacher"]["origin"] == "cache"


def test_the_top_k_teacher_cache_across_tokenizers_is_refused_in_one_line_before_any_training(tmp_path):
    docs = _documents(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY_LM, "loss=lm_uld", f"data.train_file={docs}", "data.vocab_size=300",
         "data.teacher_vocab_size=330", "teacher.cache=true", f"cache_dir={tmp_path / 'cache'}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: teacher.cache=true stores the teacher's top-k on the "
                                                             "student's tokens, but this teacher has its own tokenizer")
    assert not (tmp_path / "cache" / "teachers").exists()  # refused before the teacher was trained
