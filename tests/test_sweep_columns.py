"""The sweep summary: a column per swept key, ranked by validation accuracy with test beside, KD's gain."""

from __future__ import annotations

import csv
import json

import yaml

from distill.cli.sweep_summary import summarize_sweep


def write_job(sweep, name, overrides, val=None, test=None, gain=None, error=None):
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if error:
        (job / "failed.json").write_text(json.dumps({"error": error}))
        return
    summary = {"student": {"test_accuracy": test, "best_val_accuracy": val}, "teacher": {"test_accuracy": 0.9},
               "agreement": 0.8, "seconds": 12.34, "kd_vs_alone_points": gain}
    (job / "summary.json").write_text(json.dumps(summary))


def test_ranked_by_validation_with_one_column_per_swept_key(tmp_path):
    write_job(tmp_path, "0", ["loss.kd.temperature=1", "seed=1"], val=0.80, test=0.95, gain=1.5)
    write_job(tmp_path, "1", ["loss.kd.temperature=4", "seed=1"], val=0.90, test=0.85, gain=-0.25)
    write_job(tmp_path, "2", ["loss.kd.temperature=0", "+trainer.max_epochs=2"], error="KD: temperature must be > 0")
    rows = summarize_sweep(tmp_path)
    # job 1 has the better validation accuracy, though job 0 tests better: validation decides
    assert [r["job"] for r in rows] == ["1", "0", "2"] and rows[0]["best"]
    table = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert list(table[0])[:5] == ["job", "status", "loss.kd.temperature", "seed", "trainer.max_epochs"]
    assert [(r["loss.kd.temperature"], r["seed"], r["trainer.max_epochs"]) for r in table] == [("4", "1", ""), ("1", "1", ""), ("0", "", "2")]
    assert [r["student_val_accuracy"] for r in table] == ["0.9", "0.8", ""]
    assert [r["kd_vs_alone_points"] for r in table] == ["-0.25", "1.5", ""]
    markdown = (tmp_path / "summary.md").read_text().splitlines()
    assert "| job | loss.kd.temperature | seed | trainer.max_epochs | student val accuracy | student test accuracy |" in markdown[4]
    assert "KD vs student alone (points)" in markdown[4]
    assert markdown[6] == "| 1 | `4` | `1` |  | 90.00 % | 85.00 % | 90.00 % | 80.00 % | -0.2 | 12.3 | **best** |"


def test_without_a_baseline_there_is_no_gain_column(tmp_path):
    write_job(tmp_path, "0", ["seed=1"], val=0.5, test=0.5)
    summarize_sweep(tmp_path)
    assert "KD vs student alone" not in (tmp_path / "summary.md").read_text()


def test_over_seeds_the_gain_gets_its_mean_and_standard_error(tmp_path):
    for job, (temperature, seed, gain) in enumerate([("4", "0", 1.0), ("4", "1", 2.0), ("4", "2", 3.0),
                                                     ("1", "0", 0.5), ("1", "1", -0.5), ("2", "0", 9.0)]):
        write_job(tmp_path, str(job), ["baseline=true", f"loss.kd.temperature={temperature}", f"seed={seed}"],
                  val=0.5, test=0.5, gain=gain)
    summarize_sweep(tmp_path)
    lines = [line for line in (tmp_path / "summary.md").read_text().splitlines() if line.startswith("- KD vs")]
    # baseline=true is the same in every job, so it does not name a group; worked by hand: T=4: mean 2.0, sd 1.0, SE 1/sqrt(3) = 0.577; T=1: mean 0.0, sd 0.707, SE 0.5; T=2: one seed, no line
    assert sorted(lines) == [
        "- KD vs student alone (loss.kd.temperature=1), seeds 0, 1: +0.0 ± 0.5 points (mean ± SE), within the noise (|mean| <= 2 SE)",
        "- KD vs student alone (loss.kd.temperature=4), seeds 0, 1, 2: +2.0 ± 0.6 points (mean ± SE), beyond the noise (|mean| > 2 SE)",
    ]


def test_a_sweep_without_seeds_has_no_noise_line(tmp_path):
    write_job(tmp_path, "0", ["loss.kd.temperature=1"], val=0.5, test=0.5, gain=1.0)
    write_job(tmp_path, "1", ["loss.kd.temperature=2"], val=0.5, test=0.5, gain=2.0)
    summarize_sweep(tmp_path)
    assert "- KD vs" not in (tmp_path / "summary.md").read_text()
