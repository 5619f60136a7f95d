"""The summary of a distillation run: what the student kept of the teacher, in JSON and Markdown."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from distill.io import atomic_write_text
from distill.report.sanity import kd_gain_line


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def run_summary(
    report: Mapping[str, Any],
    teacher: Mapping[str, Any],
    student: Mapping[str, Any],
    /,
    **facts: Any,
) -> dict[str, Any]:
    """The run's summary: ``teacher`` and ``student`` facts with their test numbers from ``report``'s rows.

    ``teacher`` and ``student`` hold what the report does not know (name, source,
    checkpoint, ...); ``facts`` are the run's other entries (loss, seconds, run_dir, logs, report).
    A ``baseline`` row of the report adds a ``baseline`` entry.
    """
    rows = {row["role"]: row for row in report["rows"]}
    summary: dict[str, Any] = {
        "teacher": {**teacher, "test_accuracy": rows["teacher"]["accuracy"], "parameters": rows["teacher"]["parameters"]},
        "student": {**student, "test_accuracy": rows["student"]["accuracy"], "parameters": rows["student"]["parameters"]},
        "agreement": rows["student"]["agreement"],
        **facts,
    }
    if "baseline" in rows:
        summary["baseline"] = {"name": rows["baseline"]["name"], "test_accuracy": rows["baseline"]["accuracy"]}
        if rows["baseline"]["accuracy"] is not None and rows["student"]["accuracy"] is not None:
            summary["kd_vs_alone_points"] = 100 * (rows["student"]["accuracy"] - rows["baseline"]["accuracy"])
    summary["warnings"] = list(report.get("warnings", []))
    return summary


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """Render a summary (as built by :func:`write_summary`'s caller) as a Markdown table and list."""
    teacher, student = summary["teacher"], summary["student"]
    ratio = teacher["parameters"] / max(student["parameters"], 1)
    lines = [
        "# Distillation summary",
        "",
        "| model | name | test accuracy | parameters |",
        "|---|---|---:|---:|",
        f"| teacher | {teacher['name']} | {_percent(teacher['test_accuracy'])} | {teacher['parameters']:,} |",
        f"| student | {student['name']} | {_percent(student['test_accuracy'])} | {student['parameters']:,} |",
        "",
        f"- teacher–student agreement on the test set: {_percent(summary['agreement'])}",
        *([f"- {kd_gain_line(summary['kd_vs_alone_points'])}"] if summary.get("kd_vs_alone_points") is not None else []),
        f"- the student has {ratio:.1f}× fewer parameters than the teacher",
        f"- teacher: {teacher['source']}",
        f"- time taken: {summary['seconds']:.1f} s",
        f"- student checkpoint: {student['checkpoint']}",
        f"- student weights (plain state_dict, no teacher inside): {student['weights']}",
        f"- logs: {summary['logs']}",
        "",
    ]
    return "\n".join(lines)


def write_summary(summary: Mapping[str, Any], directory: str | Path) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.md`` into ``directory``; return their paths."""
    directory = Path(directory)
    json_path = atomic_write_text(directory / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    md_path = atomic_write_text(directory / "summary.md", summary_markdown(summary))
    return json_path, md_path


def summary_teacher(run_dir: str | Path | None) -> dict[str, Any] | None:
    """The teacher a run's ``summary.json`` records (name, sha256 of the weights, source, ...), None without one."""
    path = Path(run_dir) / "summary.json" if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        teacher = json.loads(path.read_text())["teacher"]
    except (ValueError, KeyError, TypeError):
        return None
    return teacher if isinstance(teacher, dict) else None
