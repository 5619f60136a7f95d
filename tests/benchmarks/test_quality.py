"""benchmarks/quality.py: the statistics by hand, and the whole benchmark on a tiny setting."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import quality  # noqa: E402


def test_paired_difference_by_hand():
    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, SE 0.1 / sqrt 3 = 0.0577; 0.2 > 2 SE
    result = quality.paired([0.6, 0.7, 0.8], [0.5, 0.5, 0.5])
    assert result["mean"] == pytest.approx(0.2)
    assert result["se"] == pytest.approx(0.1 / math.sqrt(3))
    assert result["t"] == pytest.approx(0.2 / (0.1 / math.sqrt(3)))
    assert result["beyond_noise"]
    # differences +0.1, -0.1: mean 0, within the noise
    assert not quality.paired([0.6, 0.4], [0.5, 0.5])["beyond_noise"]
    # one seed: no noise estimate, never "beyond noise"
    single = quality.paired([0.9], [0.5])
    assert math.isnan(single["se"]) and not single["beyond_noise"]


def test_summary_pairs_each_recipe_with_its_reference_seed_by_seed():
    runs = [
        {"recipe": "student_alone", "seed": 1, "test_accuracy": 0.5},
        {"recipe": "student_alone", "seed": 0, "test_accuracy": 0.6},
        {"recipe": "kd", "seed": 0, "test_accuracy": 0.7},
        {"recipe": "kd", "seed": 1, "test_accuracy": 0.7},
    ]
    summary = quality.summarise(runs, ["student_alone", "kd"])
    assert summary["student_alone"]["mean"] == pytest.approx(0.55)
    assert summary["student_alone"]["std"] == pytest.approx(math.sqrt(0.005))
    assert summary["kd"]["paired_difference"]["mean"] == pytest.approx(0.15)  # (0.1 + 0.2) / 2
    assert "paired_difference" not in summary["student_alone"]
    assert "| `kd` |" in quality.markdown(summary, {
        "student": "s", "teacher": "t", "teacher_test_accuracy": 0.9, "data": "mnist1d", "steps": 1, "batch_size": 1,
        "seeds": [0, 1]})


@pytest.mark.slow  # 6 tiny Lightning runs: 30-90 s on a busy 2-core machine
def test_the_benchmark_runs_every_recipe_on_a_tiny_setting(tmp_path):
    out = tmp_path / "q.json"
    result = quality.main([
        "--seeds", "0", "1", "--steps", "3", "--teacher-steps", "3", "--eval-every", "3", "--pool-size", "50",
        "--recipes", "student_alone", "kd_unlabeled", "ce_scarce", "kd_scarce",
        "--cache-dir", os.environ["DISTILL_CACHE_DIR"], "--out", str(out),
    ])
    saved = json.loads(out.read_text())
    assert saved["summary"].keys() == result["summary"].keys() == {"student_alone", "kd_unlabeled", "ce_scarce", "kd_scarce"}
    assert all(run["steps"] == 3 for run in saved["runs"]) and len(saved["runs"]) == 8
    assert saved["summary"]["kd_scarce"]["compared_with"] == "ce_scarce"
    assert out.with_suffix(".md").read_text().count("| `") == 4
