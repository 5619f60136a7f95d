"""``python -m distill.run experiment=lm`` end to end on the embedded corpus, shrunk to seconds of training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # real training runs (minutes on 2 cores): `pytest -m slow`, which CI runs

#: experiment=lm with tiny models, 32-token blocks, a 300-token BPE and a few batches
TINY_LM = [
    "experiment=lm", "data.block_size=32", "data.vocab_size=300",
    "teacher.config.n_layer=2", "teacher.config.n_embd=32", "teacher.config.n_head=2", "teacher.train.epochs=1",
    "student.config.n_embd=16", "student.config.n_head=2", "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false", "+report.speed=false",
]


def run_lm(tmp_path, *extra, run="run"):
    return subprocess.run(
        [sys.executable, "-m", "distill.run", *TINY_LM, *extra, f"cache_dir={tmp_path / 'cache'}",
         f"hydra.run.dir={tmp_path / run}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_experiment_lm_trains_the_teacher_distils_and_reports(tmp_path):
    result = run_lm(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "language_model" and summary["teacher"]["origin"] == "trained"
    assert summary["teacher"]["sha256"] == summary["teacher"]["sha256_after"]
    report = json.loads((run / "report_lm.json").read_text())
    roles = [row["role"] for row in report["rows"]]
    assert roles == ["teacher", "student"] and report["rows"][1]["parameters"] < report["rows"][0]["parameters"]
    assert 1 < report["rows"][1]["perplexity"] < 300 * 1.5 and 0 <= report["rows"][1]["agreement"] <= 1
    assert len(report["generations"]) == 3 and "loss" in (run / "mask_audit.txt").read_text()
    audit = (run / "mask_audit.txt").read_text().strip()
    assert audit.splitlines()[0].endswith("tokens carry loss ([...]: loss-carrying)") and report["mask_audit"] == audit
    assert audit in (run / "report_lm.md").read_text()
    assert (run / "student_model" / "config.json").is_file() and (run / "student_model" / "tokenizer.json").is_file()
    assert "# Language-model report" in result.stdout and report["summary"] in result.stdout
    assert len(list((tmp_path / "cache" / "teachers").glob("hf_causal_lm-*.pt"))) == 1
    # the console: numbered phases as in the vision run, one weighted line per epoch, the pointers last
    lines = result.stdout.splitlines()
    phases = [line for line in lines if line.startswith("[")]
    assert phases == [
        "[1/3] training the teacher (gpt2-2x32, 1 epoch)",
        "[2/3] distilling gpt2-2x32 into gpt2-2x16 (1 epoch, loss kd ×0.9 + ce ×0.1)",
        "[3/3] measuring the teacher, the student on the test set (perplexity, agreement, KL, speed)",
    ], phases
    assert any(line.startswith("epoch 1/1  loss ") and "(0.9 kd " in line for line in lines), lines
    assert lines[-2:] == [f"report: {run / 'report_lm.md'}", f"student weights: {run / 'student_model'}"], lines[-4:]


@pytest.mark.slow
def test_evaluate_and_export_the_saved_student_then_a_second_run_reuses_the_teacher_with_a_baseline(tmp_path):
    assert run_lm(tmp_path).returncode == 0
    run = tmp_path / "run"
    report = json.loads((run / "report_lm.json").read_text())
    # distill.evaluate on the saved student: the same LM report, the teacher from the run's cache
    evaluated = subprocess.run(
        [sys.executable, "-m", "distill.evaluate", f"checkpoint={run / 'student_model'}", "per_sample=true",
         f"out_dir={tmp_path / 'eval'}", f"hydra.run.dir={tmp_path / 'eval'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    again = json.loads((tmp_path / "eval" / "report_lm.json").read_text())
    assert again["rows"][1]["perplexity"] == pytest.approx(report["rows"][1]["perplexity"], rel=1e-4)
    assert again["rows"][1]["kl"] == pytest.approx(report["rows"][1]["kl"], rel=1e-3, abs=1e-6)
    lines = (tmp_path / "eval" / "per_sequence.csv").read_text().splitlines()
    assert lines[0] == "sequence,tokens,student_nll,teacher_nll,kl" and len(lines) > 2

    # distill.export on the run's best checkpoint: a save_pretrained directory that loads in a fresh process
    # and computes what the run's own student_model/ computes (the same best weights)
    export = subprocess.run(
        [sys.executable, "-m", "distill.export", f"checkpoint={run / 'checkpoints' / 'best.ckpt'}",
         f"out={tmp_path / 'exported'}", f"hydra.run.dir={tmp_path / 'export'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    assert "as huggingface to" in export.stdout and json.loads((tmp_path / "exported.json").read_text())["max_abs_diff"] <= 1e-4
    compare = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "a, b = (AutoModelForCausalLM.from_pretrained(d, local_files_only=True).eval() for d in sys.argv[1:3])\n"
        "ids = AutoTokenizer.from_pretrained(sys.argv[1])('The for statement', return_tensors='pt')['input_ids']\n"
        "with torch.no_grad():\n"
        "    print(float((a(input_ids=ids).logits - b(input_ids=ids).logits).abs().max()))\n"
    )
    fresh = subprocess.run([sys.executable, "-c", compare, str(tmp_path / "exported"), str(run / "student_model")],
                           capture_output=True, text=True, timeout=300, check=False)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert float(fresh.stdout.strip().splitlines()[-1]) == 0.0
    wrong = subprocess.run(
        [sys.executable, "-m", "distill.export", f"checkpoint={run / 'checkpoints' / 'best.ckpt'}", "format=torchscript",
         f"hydra.run.dir={tmp_path / 'export2'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
    )
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines()[-1].startswith("error: format=torchscript exports classifiers")

    result = run_lm(tmp_path, "baseline=true", run="second")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "second" / "summary.json").read_text())
    assert summary["teacher"]["origin"] == "cache" and "baseline" in summary
    assert "the student trained alone" in summary["line"]


def test_a_bf16_run_with_a_csv_logger_resumes_from_its_last_checkpoint(tmp_path):
    import csv

    import torch

    options = ("trainer.precision=bf16-mixed", "logger=csv")
    first = run_lm(tmp_path, *options)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "run"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    second = run_lm(tmp_path, *options, "trainer.max_epochs=2", "resume=true")
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"Resuming from {run / 'checkpoints' / 'last.ckpt'}" in second.stdout
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    logged = {folder: [r["epoch"] for r in csv.DictReader(open(run / "logs" / folder / "metrics.csv")) if r.get("val/acc")]
              for folder in ("", "resumed-1")}
    assert logged == {"": ["0"], "resumed-1": ["1"]}
    assert "epoch 2/2  loss " in second.stdout and json.loads((run / "summary.json").read_text())["task"] == "language_model"
