"""After a sweep (``python -m distill.run -m ...``): one table of every job, best first.

A Hydra callback (it imports Hydra), so it lives with the commands in ``cli/``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from distill.io import atomic_write_text

log = logging.getLogger(__name__)

COLUMNS = ("job", "status", "overrides", "student_accuracy", "teacher_accuracy", "agreement", "seconds", "error")


def job_row(job_dir: Path) -> dict[str, Any]:
    """One job's overrides and key numbers, read from its directory."""
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    row: dict[str, Any] = {"job": job_dir.name, "overrides": " ".join(overrides or [])}
    summary, failure = job_dir / "summary.json", job_dir / "failed.json"
    if summary.is_file():
        data = json.loads(summary.read_text())
        row.update(
            status="ok",
            student_accuracy=data["student"]["test_accuracy"],
            teacher_accuracy=data["teacher"]["test_accuracy"],
            agreement=data["agreement"],
            seconds=round(data["seconds"], 1),
        )
    elif failure.is_file():
        row.update(status="failed", error=json.loads(failure.read_text())["error"])
    else:
        row.update(status="failed", error="the job wrote no summary (killed or crashed)")
    return row


def summarize_sweep(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir``; return the rows, best student first."""
    sweep_dir = Path(sweep_dir)
    jobs = [d for d in sweep_dir.iterdir() if d.is_dir() and (d / ".hydra").is_dir()]
    rows = [job_row(d) for d in jobs]
    rows.sort(key=lambda r: (r["status"] != "ok", -(r.get("student_accuracy") or 0.0), r["job"]))
    if rows and rows[0]["status"] == "ok":
        rows[0]["best"] = True

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, "best"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "summary.csv", buffer.getvalue())

    def percent(value: Any) -> str:
        return "" if value is None else f"{100 * value:.2f} %"

    lines = [
        "# Sweep summary",
        "",
        "| job | overrides | student accuracy | teacher accuracy | agreement | seconds | status |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        status = "**best**" if row.get("best") else row["status"] if row["status"] == "ok" else f"failed: {row['error']}"
        lines.append(
            f"| {row['job']} | `{row['overrides']}` | {percent(row.get('student_accuracy'))} | "
            f"{percent(row.get('teacher_accuracy'))} | {percent(row.get('agreement'))} | "
            f"{row.get('seconds', '')} | {status} |"
        )
    atomic_write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return rows


class SweepSummary(Callback):
    """Writes the sweep's summary once every job has finished, failed jobs included."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = summarize_sweep(sweep_dir)
        failed = [r for r in rows if r["status"] != "ok"]
        log.info("Sweep summary: %s (%d jobs, %d failed)", sweep_dir / "summary.md", len(rows), len(failed))
        if failed:
            print(f"error: {len(failed)} of {len(rows)} jobs failed; see {sweep_dir / 'summary.md'}", file=sys.stderr)
            sys.exit(1)
