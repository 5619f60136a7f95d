import json

from distill.report.run_summary import summary_markdown, write_summary

SUMMARY = {
    "teacher": {"name": "resnet50", "source": "cached teacher /c/t.pt", "test_accuracy": 0.98, "parameters": 23_528_522},
    "student": {"name": "resnet18", "test_accuracy": 0.975, "parameters": 11_181_642,
                "checkpoint": "/r/checkpoints/best.ckpt", "weights": "/r/student.pt"},
    "agreement": 0.99,
    "seconds": 123.4,
    "logs": "/r/logs",
}


def test_markdown_table_and_facts():
    text = summary_markdown(SUMMARY)
    assert "| teacher | resnet50 | 98.00 % | 23,528,522 |" in text
    assert "| student | resnet18 | 97.50 % | 11,181,642 |" in text
    assert "agreement on the test set: 99.00 %" in text
    assert "2.1× fewer parameters" in text
    assert "/r/student.pt" in text and "/r/checkpoints/best.ckpt" in text and "123.4 s" in text


def test_missing_accuracy_reads_not_available():
    text = summary_markdown({**SUMMARY, "agreement": None})
    assert "agreement on the test set: n/a" in text


def test_write_summary_writes_both_files(tmp_path):
    json_path, md_path = write_summary(SUMMARY, tmp_path)
    assert json.loads(json_path.read_text()) == SUMMARY
    assert md_path.read_text() == summary_markdown(SUMMARY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json", "summary.md"]


def test_a_baseline_run_states_what_kd_gained():
    assert "- KD vs student alone: +1.5 points" in summary_markdown({**SUMMARY, "kd_vs_alone_points": 1.5})
    assert "KD vs student alone" not in summary_markdown(SUMMARY)


def test_summary_teacher_reads_what_the_run_recorded(tmp_path):
    from distill.report.run_summary import summary_teacher

    assert summary_teacher(None) is None and summary_teacher(tmp_path) is None  # no run directory, no summary
    (tmp_path / "summary.json").write_text('{"teacher": {"name": "resnet18", "sha256": "ab", "source": "cache"}}')
    assert summary_teacher(tmp_path) == {"name": "resnet18", "sha256": "ab", "source": "cache"}
    for broken in ("not json", '{"student": {}}', '{"teacher": "resnet18"}'):
        (tmp_path / "summary.json").write_text(broken)
        assert summary_teacher(tmp_path) is None, broken
