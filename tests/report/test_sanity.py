"""The report's sanity warnings, on constructed rows: each case warned about once, a healthy report not at all."""

from __future__ import annotations

import math

from distill.report.sanity import kd_gain_line, kd_gains, sanity_warnings
from distill.report.table import build_report, report_markdown

TEACHER = {"name": "resnet50", "role": "teacher", "accuracy": 0.90, "parameters": 23_000_000, "latency_b1_ms": 30.0}
STUDENT = {"name": "resnet18", "role": "student", "accuracy": 0.85, "parameters": 11_000_000, "latency_b1_ms": 10.0}


def warnings_for(*rows, num_classes=10, test_samples=1000):
    return sanity_warnings(build_report(list(rows))["rows"], num_classes, test_samples)


def test_a_healthy_report_has_no_warnings():
    assert warnings_for(TEACHER, STUDENT) == []


def test_a_model_at_chance_level():
    # chance 10 %; two binomial standard errors on 1000 samples: 2 * sqrt(0.1 * 0.9 / 1000) = 1.897 points
    margin = 2 * math.sqrt(0.1 * 0.9 / 1000)
    at_chance = {**STUDENT, "accuracy": 0.1 + margin - 1e-6}
    above = {**STUDENT, "accuracy": 0.1 + margin + 1e-3}
    assert warnings_for(TEACHER, at_chance) == [
        "the student (resnet18) is at chance level: 11.9 % with 10 classes (guessing gives 10.0 %)"
    ]
    assert warnings_for(TEACHER, above) == []


def test_a_student_larger_or_slower_than_its_teacher():
    big_slow = {**STUDENT, "name": "vit", "parameters": 40_000_000, "latency_b1_ms": 45.0}
    assert warnings_for(TEACHER, big_slow) == [
        "the student (vit) is larger than its teacher: 40,000,000 parameters vs 23,000,000",
        "the student (vit) is 1.5× slower than its teacher at batch 1",  # 45 / 30
    ]
    within_noise = {**big_slow, "parameters": 1, "speedup_b1_within_noise": True}
    assert warnings_for(TEACHER, within_noise) == []


def test_a_student_worse_than_its_baseline_twin_and_the_gain_line():
    baseline = {**STUDENT, "role": "baseline", "accuracy": 0.874}
    assert warnings_for(TEACHER, STUDENT, baseline) == [
        "the distilled student (resnet18) is 2.4 points worse than the same model trained alone (baseline): "
        "the teacher did not help here"
    ]
    gains = kd_gains(build_report([TEACHER, STUDENT, baseline])["rows"])
    assert len(gains) == 1 and math.isclose(gains[0]["points"], 100 * (0.85 - 0.874))
    assert kd_gain_line(gains[0]["points"]) == "KD vs student alone: -2.4 points"
    assert kd_gain_line(1.26) == "KD vs student alone: +1.3 points"


def test_teacher_and_student_of_one_architecture():
    twin = {**STUDENT, "name": "resnet50", "parameters": 23_000_000, "latency_b1_ms": 30.0}
    assert warnings_for(TEACHER, twin) == [
        "teacher and student are the same architecture (resnet50): the student cannot be smaller or faster"
    ]


def test_a_split_too_small_to_mean_anything():
    assert warnings_for(TEACHER, STUDENT, test_samples=10) == [
        "the test split has only 10 samples: each one moves the accuracy by 10.0 points, too coarse to compare "
        "models (use at least 100)"
    ]
    assert warnings_for(TEACHER, STUDENT, test_samples=100) == []


def test_warnings_and_the_gain_reach_the_markdown():
    baseline = {**STUDENT, "role": "baseline", "accuracy": 0.80}
    report = build_report([TEACHER, STUDENT, baseline])
    report["warnings"] = ["the test split has only 10 samples"]
    markdown = report_markdown(report)
    assert "- KD vs student alone: +5.0 points" in markdown
    assert "## Warnings\n\n- the test split has only 10 samples" in markdown
