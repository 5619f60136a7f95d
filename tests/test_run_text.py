"""Text runs on the command line (subprocess): Hugging Face teacher and student, CSV data, evaluate, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir

from distill.cli.teachers import model_spec
from distill.run import config_dir

FAST = [
    "trainer.max_epochs=1",
    "teacher.train.epochs=1",
    "+trainer.limit_train_batches=2", "report.latency=off",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "data.batch_size=8",
    "data.max_length=16",
]


def cli(module, *args, cwd):
    return subprocess.run(
        [sys.executable, "-m", module, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def data_args(files, tokenizer):
    return [
        "data=text", f"data.train_file={files['train']}", f"data.val_file={files['val']}",
        f"data.test_file={files['test']}", f"data.tokenizer={tokenizer}",
    ]


def test_student_config_builds_from_the_teachers_directory():
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[
            "teacher=hf_sequence_classification", "teacher.path=/models/bert", "student=hf_sequence_classification",
            "student.config.num_hidden_layers=3", "student.init_layers=every_other", "data=text",
        ])
    options = model_spec(cfg.student).options
    assert options == {
        "path": None, "config_from": "/models/bert", "init_layers": "every_other", "attn_implementation": None,
        "config": {"num_hidden_layers": 3, "hidden_size": None, "num_attention_heads": None, "intermediate_size": None},
    }
    assert model_spec(cfg.teacher).options["path"] == "/models/bert"


def test_the_tokenizer_defaults_to_the_teachers_directory_and_none_is_one_line(tmp_path):
    from distill.data import TextClassificationDataModule
    from distill.errors import DistillError

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        given = compose("config", overrides=["teacher=hf_sequence_classification", "teacher.path=/models/bert", "data=text"])
        other = compose("config", overrides=["teacher=hf_sequence_classification", "teacher.path=/models/bert", "data=text",
                                             "data.tokenizer=/models/other"])
        without = compose("config", overrides=["teacher=resnet18", "data=text", "data.train_file=x.csv"])
    assert given.data.tokenizer == "/models/bert" and other.data.tokenizer == "/models/other"
    assert without.data.tokenizer is None
    with pytest.raises(DistillError, match=r"^data.tokenizer is not set: give data.tokenizer=DIR"):
        TextClassificationDataModule(str(tmp_path / "train.csv"), tokenizer=None)


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_text_run_then_evaluate_and_export(tmp_path, tiny_bert, sentiment_files):
    # a teacher whose head has 3 labels, mapped onto the data's 2 (neg, pos), fine-tuned first and cached;
    # a narrower, shallower student built from the teacher's config; FitNet between named BERT layers
    teacher = tiny_bert("teacher", num_labels=3)
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    result = cli(
        "distill.run",
        "teacher=hf_sequence_classification", f"teacher.path={teacher}", "teacher.class_map=[2,0]",
        "student=hf_sequence_classification", "student.config.num_hidden_layers=1", "student.config.hidden_size=16",
        "student.config.intermediate_size=32",
        "loss=fitnet", "loss.fitnet.student_layer=bert.encoder.layer.0", "loss.fitnet.teacher_layer=model.bert.encoder.layer.1",
        *data_args(sentiment_files, teacher), *[a for a in FAST if not a.startswith("report.latency")],
        "report.latency=quick", f"cache_dir={cache}", f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    # the report and summary name the models after their directories, not hf_sequence_classification twice
    assert (summary["teacher"]["name"], summary["student"]["name"]) == (teacher.name, f"{teacher.name} (1 layer)")
    assert summary["teacher"]["origin"] == "trained" and summary["teacher"]["sha256"] == summary["teacher"]["sha256_after"]
    assert summary["student"]["parameters"] < summary["teacher"]["parameters"]
    report = json.loads((run_dir / "report.json").read_text())
    assert all(row["latency_b1_ms"] > 0 for row in report["rows"])  # latency measured on keyword inputs
    student = torch.load(run_dir / "student.pt", weights_only=True)
    assert student["classifier.weight"].shape == (2, 16)

    evaluated = cli("distill.evaluate", f"checkpoint={run_dir / 'student.pt'}", f"cache_dir={cache}",
                    f"out_dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert evaluation["model"]["accuracy"] == summary["student"]["test_accuracy"]

    exported = cli("distill.export", f"checkpoint={run_dir / 'student.pt'}", "format=state_dict",
                   f"out={tmp_path / 'student.state_dict.pt'}", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert json.loads((tmp_path / "student.state_dict.pt.json").read_text())["max_abs_diff"] == 0.0
    traced = cli("distill.export", f"checkpoint={run_dir / 'student.pt'}", "format=torchscript",
                 f"out={tmp_path / 'student.ts'}", cwd=tmp_path)
    assert traced.returncode == 2
    assert "takes keyword inputs (input_ids, token_type_ids, attention_mask); use format=state_dict" in traced.stderr
    assert not (tmp_path / "student.ts").exists()

    # format=huggingface: a save_pretrained directory with the data's tokenizer, which a fresh process loads with
    # AutoModelForSequenceClassification and which computes what the run's student weights compute
    hf_dir = tmp_path / "student-hf"
    exported = cli("distill.export", f"checkpoint={run_dir / 'student.pt'}", "format=huggingface", f"out={hf_dir}", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert json.loads((tmp_path / "student-hf.json").read_text())["max_abs_diff"] <= 1e-4
    code = ("import sys, torch\n"
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
            "model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()\n"
            "batch = AutoTokenizer.from_pretrained(sys.argv[1])(['a fine film', 'dull'], padding=True, return_tensors='pt')\n"
            "with torch.no_grad():\n"
            "    print(model(**batch).logits.tolist())\n")
    loaded = subprocess.run([sys.executable, "-c", code, str(hf_dir)], capture_output=True, text=True, timeout=300,
                            check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    rebuilt = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(hf_dir)).eval()
    rebuilt.load_state_dict(student)
    batch = AutoTokenizer.from_pretrained(teacher)(["a fine film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = rebuilt(**batch).logits
    assert torch.allclose(torch.tensor(json.loads(loaded.stdout)), expected, atol=1e-5)


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_text_run_without_teacher_path_is_one_line(tmp_path, tiny_bert, sentiment_files):
    # (a hub name instead of a directory: tests/models/test_huggingface.py)
    result = cli(
        "distill.run", "teacher=hf_sequence_classification", "student=hf_sequence_classification",
        *data_args(sentiment_files, tiny_bert()), f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "error: path is not set: give teacher.path=DIR" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # minutes on 2 CPU cores: MiniLM's latency is measured at batch 64 in the report
def test_minilm_teacher_run(tmp_path, minilm_dir, sentiment_files):
    # MiniLM-L6 (a BERT without a classification head): fine-tuned for one epoch on the data first, then
    # distilled into a 1-layer student that starts from its embeddings and first layer
    run_dir = tmp_path / "run"
    result = cli(
        "distill.run",
        "teacher=hf_sequence_classification", f"teacher.path={minilm_dir}",
        "student=hf_sequence_classification", "student.config.num_hidden_layers=1", "student.init_layers=[0]",
        *data_args(sentiment_files, minilm_dir), *FAST, f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["teacher"]["origin"] == "trained"
    # MiniLM-L6's 22,713,216 parameters and a 2-class head of 384 * 2 + 2
    assert summary["teacher"]["parameters"] == 22_713_986
    assert summary["student"]["parameters"] < summary["teacher"]["parameters"]
