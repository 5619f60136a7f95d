"""distill.report.evaluate: the report's numbers for a student (or a teacher alone), in-process, on tiny models."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from distill.errors import DistillError
from distill.report.evaluation_report import evaluate
from distill.report.measurement import evaluation_loader
from distill.losses import DIST, KD, CrossEntropy, StepOutputs
from distill.models.fingerprint import count_parameters
from distill.report.metrics import classification_metrics, collect_logits


@pytest.fixture
def pair(make_cnn):
    torch.manual_seed(0)
    return make_cnn(width=4), make_cnn(width=8)  # student, teacher: 10 classes, 1 channel


def test_numbers_are_the_reports_on_the_whole_test_set(pair, digits_small, tmp_path):
    student, teacher = pair
    result = evaluate(
        student, teacher, digits_small, out_dir=tmp_path, names={"student": "small", "teacher": "big"}, meta={"note": "x"}
    )
    logits, labels = collect_logits(student, digits_small.test_dataloader())
    teacher_logits, _ = collect_logits(teacher, digits_small.test_dataloader())
    expected = classification_metrics(logits, labels, teacher_logits)
    row = result["model"]
    assert (row["name"], row["role"]) == ("small", "student")
    for key in ("accuracy", "top5_accuracy", "agreement", "ece", "nll", "samples", "classes"):
        assert row[key] == pytest.approx(expected[key]), key
    assert row["top5_accuracy"] is not None  # 10 classes
    assert row["parameters"] == count_parameters(student) and row["size_mb"] > 0
    assert row["latency_b1_ms"] > 0 and row["latency_b64_ms"] > 0
    assert [r["role"] for r in result["rows"]] == ["teacher", "student"]
    assert result["meta"]["note"] == "x" and result["meta"]["samples"] == len(labels)

    written = json.loads((tmp_path / "evaluation.json").read_text())
    assert written["model"]["accuracy"] == pytest.approx(row["accuracy"])
    assert written["files"] == result["files"] == {
        "json": str(tmp_path / "evaluation.json"), "markdown": str(tmp_path / "evaluation.md"),
        "reliability": str(tmp_path / "reliability.png"),
    }
    assert (tmp_path / "reliability.png").stat().st_size > 0  # the run report's diagram, for these two models
    markdown = (tmp_path / "evaluation.md").read_text()
    assert markdown.startswith("# Evaluation") and "| small | student |" in markdown
    assert not (tmp_path / "per_sample.csv").exists()


def test_per_sample_csv_means_are_the_terms_values_on_the_whole_set(pair, digits_small, tmp_path):
    student, teacher = pair
    loss = {"kd": KD(temperature=4.0, weight=0.9), "ce": CrossEntropy(weight=0.1, label_smoothing=0.1), "dist": DIST()}
    result = evaluate(student, teacher, digits_small, loss=loss, per_sample=True, out_dir=tmp_path, latency=False)

    with open(tmp_path / "per_sample.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["index", "label", "student_pred", "teacher_pred", "disagreement", "loss/kd", "loss/ce"]
    x, y = digits_small.splits["test"].inputs, digits_small.splits["test"].labels
    assert len(rows) == len(y)
    student.eval()
    teacher.eval()
    with torch.no_grad():
        outputs = StepOutputs(student=student(x), teacher=teacher(x), labels=y)
    for name in ("kd", "ce"):
        column = torch.tensor([float(r[f"loss/{name}"]) for r in rows], dtype=torch.float64)
        whole = loss[name](outputs).item()
        assert column.mean().item() == pytest.approx(whole, rel=1e-5), name
        assert result["losses"][name] == pytest.approx(whole, rel=1e-5), name
    assert result["losses_without_per_sample_values"] == ["dist"]
    assert [int(r["label"]) for r in rows] == y.tolist()
    assert [int(r["student_pred"]) for r in rows] == outputs.student.argmax(1).tolist()
    disagreement = sum(int(r["disagreement"]) for r in rows) / len(rows)
    assert 1 - disagreement == pytest.approx(result["model"]["agreement"])
    assert result["files"]["per_sample"] == str(tmp_path / "per_sample.csv")
    assert "## Loss terms on the test set" in (tmp_path / "evaluation.md").read_text()
    assert "per_sample" not in json.loads((tmp_path / "evaluation.json").read_text())


def test_models_are_left_as_they_were(pair, digits_small):
    student, teacher = pair
    student.train()
    teacher.train()
    result = evaluate(student, teacher, digits_small.test_dataloader(), per_sample=True, latency=False)
    assert student.training and teacher.training
    assert all(p.requires_grad for p in teacher.parameters())
    assert result["files"] == {}  # no out_dir: nothing written
    assert set(result["losses"]) == {"kd", "ce"}  # the default terms
    assert len(result["per_sample"]["index"]) == result["model"]["samples"]


def test_a_teacher_alone(make_cnn, digits_small):
    teacher = make_cnn(width=8)
    result = evaluate(teacher, None, digits_small, role="teacher", names={"teacher": "big"}, latency=False)
    assert [(r["name"], r["role"]) for r in result["rows"]] == [("big", "teacher")]
    assert result["model"]["agreement"] is None and result["model"]["accuracy"] is not None
    assert result["model"]["latency_b1_ms"] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"teacher": None}, "give the teacher, or role='teacher'"),
        ({"role": "baseline"}, "role must be one of student, teacher"),
        ({"role": "teacher"}, "pass teacher=None"),
        ({"teacher": None, "role": "teacher", "per_sample": True}, "per_sample compares the student with its teacher"),
        ({"loss": {"kd": "KD"}, "per_sample": True}, "'kd' is a str"),
        ({"datamodule": 3}, "expected a data module with test_dataloader() or a data loader"),
    ],
)
def test_bad_arguments_are_clear_errors(pair, digits_small, kwargs, message):
    student, teacher = pair
    arguments = {"teacher": teacher, "datamodule": digits_small, "latency": False, **kwargs}
    with pytest.raises(DistillError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(student, **arguments)


def test_student_and_teacher_must_predict_the_same_classes(make_cnn, digits_small):
    with pytest.raises(DistillError, match="must predict the same classes"):
        evaluate(make_cnn(width=4), make_cnn(num_classes=12), digits_small, latency=False)


def test_a_data_loader_is_taken_as_the_test_set(digits_small):
    loader = digits_small.test_dataloader()
    assert evaluation_loader(loader) is loader
    assert len(evaluation_loader(digits_small).dataset) == len(loader.dataset)
