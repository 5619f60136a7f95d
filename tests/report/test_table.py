"""The comparison table: speed-up and compression versus the teacher, Markdown, console and files."""

from __future__ import annotations

import builtins
import json

import pytest

from distill.errors import DistillError
from distill.report.table import (
    build_report,
    print_report,
    report_markdown,
    write_report,
)

TEACHER = {"name": "resnet50", "role": "teacher", "accuracy": 0.98, "top5_accuracy": 0.999, "ece": 0.02,
           "nll": 0.07, "parameters": 23_528_522, "size_mb": 94.4, "latency_b1_ms": 30.0,
           "latency_b64_ms": 900.0, "throughput": 71.1}
STUDENT = {"name": "resnet18", "role": "student", "accuracy": 0.9722, "top5_accuracy": 0.998, "agreement": 0.985,
           "ece": 0.03, "nll": 0.1, "parameters": 11_181_642, "size_mb": 44.8, "latency_b1_ms": 10.0,
           "latency_b64_ms": 360.0, "throughput": 177.8}
BASELINE = {"name": "resnet18", "role": "baseline", "accuracy": 0.9602, "agreement": 0.95,
            "parameters": 11_181_642, "latency_b1_ms": 10.0}
META = {"device": "cpu", "threads": 2, "test samples": 270}


@pytest.fixture
def report():
    return build_report([BASELINE, STUDENT, TEACHER], META)


def test_ratios_versus_the_teacher(report):
    teacher, student, baseline = report["rows"]  # ordered teacher, student, baseline
    assert [r["role"] for r in report["rows"]] == ["teacher", "student", "baseline"]
    assert student["speedup_b1"] == pytest.approx(3.0)
    assert student["speedup_b64"] == pytest.approx(2.5)
    assert student["compression"] == pytest.approx(23_528_522 / 11_181_642)  # 2.104
    assert student["size_ratio"] == pytest.approx(94.4 / 44.8)
    assert student["accuracy_kept"] == pytest.approx(0.9722 / 0.98)  # 0.992
    assert teacher["speedup_b1"] == teacher["compression"] == pytest.approx(1.0)
    assert baseline["speedup_b64"] is None and baseline["size_ratio"] is None  # missing numbers stay missing
    assert report["meta"] == META
    assert STUDENT.get("speedup_b1") is None  # the caller's rows are not changed


def test_markdown_states_what_was_kept_and_bought(report):
    text = report_markdown(report)
    assert "| resnet18 | student | 97.22 % | 99.80 % | 98.50 % | 3.00 % | 0.100 | 11,181,642 | 44.8 | 10.0 | 360.0 | 178 | 3.00× | 2.50× | 2.10× |" in text
    assert "| resnet50 | teacher | 98.00 % |" in text
    assert (
        "the student (resnet18) keeps 99.2 % of the teacher's accuracy (97.22 % vs 98.00 %, agreement 98.50 %) "
        "with 2.1× fewer parameters and a 2.1× smaller file, "
        "and runs 3.0× faster at batch 1 and 2.5× faster at batch 64"
    ) in text
    assert "distillation gained 1.20 accuracy points" in text
    assert "- threads: 2" in text
    assert "n/a" in text  # the baseline's missing numbers


def test_slower_and_bigger_models_are_said_so():
    report = build_report(
        [TEACHER, {"name": "big", "role": "student", "accuracy": 0.99, "parameters": 47_057_044, "latency_b1_ms": 45.0}],
        {},
    )
    text = report_markdown(report)
    assert "2.0× more parameters" in text and "1.5× slower at batch 1" in text
    assert "keeps 101.0 % of the teacher's accuracy (99.00 % vs 98.00 %) with" in text


def test_unlabelled_rows_state_the_agreement():
    report = build_report([{"name": "t", "role": "teacher"}, {"name": "s", "role": "student", "agreement": 0.9}], {})
    assert "- the student (s) agrees with the teacher on 90.00 % of the test samples" in report_markdown(report)


def test_ratios_near_one_read_about_the_same():
    student = {"name": "s", "role": "student", "parameters": 23_000_000, "latency_b1_ms": 30.9, "latency_b64_ms": 1000.0}
    text = report_markdown(build_report([TEACHER, student], {}))
    assert "with about as many parameters (1.02×)" in text
    assert "runs about as fast (0.97×) at batch 1 and 1.1× slower at batch 64" in text


def test_rows_are_checked():
    with pytest.raises(DistillError, match="exactly one teacher"):
        build_report([STUDENT], {})
    with pytest.raises(DistillError, match="exactly one teacher"):
        build_report([TEACHER, TEACHER], {})
    with pytest.raises(DistillError, match="role"):
        build_report([TEACHER, {"name": "x", "role": "pupil"}], {})


def test_write_report_writes_json_and_markdown(report, tmp_path):
    json_path, md_path = write_report(report, tmp_path / "run")
    assert json.loads(json_path.read_text()) == report
    assert md_path.read_text() == report_markdown(report)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report.json", "report.md"]


def test_print_report_with_rich(report):
    from rich.console import Console

    console = Console(record=True, width=200)
    print_report(report, console=console)
    text = console.export_text()
    assert "resnet50" in text and "3.0×" in text and "2.1×" in text and "23.5M" in text
    assert "keeps 99.2 % of the teacher's accuracy" in text


def test_print_report_falls_back_to_markdown(report, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_rich(name, *args, **kwargs):
        if name == "rich" or name.startswith("rich."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rich)
    print_report(report)
    assert capsys.readouterr().out.strip() == report_markdown(report).strip()


def test_a_speed_up_within_the_timing_noise_is_said_so():
    student = {"name": "twin", "role": "student", "parameters": 23_528_522, "latency_b1_ms": 20.0,
               "speedup_b1_low": 0.7, "speedup_b1_high": 2.1, "speedup_b1_within_noise": True}
    report = build_report([TEACHER, student])
    markdown = report_markdown(report)
    assert (
        "not measurably faster or slower at batch 1 (1.50×, within the timing noise: rounds 0.70–2.10×, "
        "and under 10% is not told apart)"
    ) in markdown
    assert "| ~1.50× |" in markdown and "1.5× faster" not in markdown
