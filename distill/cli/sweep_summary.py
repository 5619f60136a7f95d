"""After a sweep (``python -m distill.run -m ...``): one table of every job, best validation accuracy first.

One column per swept key; the test accuracy beside the validation accuracy that ranks the jobs
(choosing by test accuracy would tune on the test set); with ``baseline=true``, what KD gained.

A Hydra callback (it imports Hydra), so it lives with the commands in ``cli/``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from distill.io import atomic_write_text

log = logging.getLogger(__name__)

COLUMNS = (
    "job", "status", "overrides", "student_val_accuracy", "student_accuracy", "teacher_accuracy", "agreement",
    "kd_vs_alone_points", "seconds", "error",
)


def _key_values(overrides: list[str]) -> dict[str, str]:
    """``["loss.kd.temperature=4", "seed=1"]`` → ``{"loss.kd.temperature": "4", "seed": "1"}``."""
    pairs = (o.partition("=") for o in overrides)
    return {key.lstrip("+~"): value for key, sep, value in pairs if sep}


def job_row(job_dir: Path) -> dict[str, Any]:
    """One job's overrides and key numbers, read from its directory."""
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    row: dict[str, Any] = {"job": job_dir.name, "overrides": " ".join(overrides or []), "keys": _key_values(overrides or [])}
    summary, failure = job_dir / "summary.json", job_dir / "failed.json"
    if summary.is_file():
        data = json.loads(summary.read_text())
        row.update(
            status="ok",
            student_val_accuracy=data["student"].get("best_val_accuracy"),
            student_accuracy=data["student"]["test_accuracy"],
            kd_vs_alone_points=data.get("kd_vs_alone_points"),
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
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir``; return the rows, best validation accuracy first.

    Ties (or jobs without a validation accuracy) are ranked by test accuracy.
    """
    sweep_dir = Path(sweep_dir)
    jobs = [d for d in sweep_dir.iterdir() if d.is_dir() and (d / ".hydra").is_dir()]
    rows = [job_row(d) for d in jobs]
    rows.sort(key=lambda r: (
        r["status"] != "ok", -(r.get("student_val_accuracy") or 0.0), -(r.get("student_accuracy") or 0.0), r["job"],
    ))
    if rows and rows[0]["status"] == "ok":
        rows[0]["best"] = True
    swept = list(dict.fromkeys(key for row in rows for key in row["keys"]))
    for row in rows:
        row.update({key: row["keys"].get(key, "") for key in swept})

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[COLUMNS[0], COLUMNS[1], *swept, *COLUMNS[2:], "best"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "summary.csv", buffer.getvalue())

    def percent(value: Any) -> str:
        return "" if value is None else f"{100 * value:.2f} %"

    def points(value: Any) -> str:
        return "" if value is None else f"{value:+.1f}"

    gains = any(row.get("kd_vs_alone_points") is not None for row in rows)
    headers = ["job", *swept, "student val accuracy", "student test accuracy", "teacher test accuracy", "agreement",
               *(["KD vs student alone (points)"] if gains else []), "seconds", "status"]
    lines = [
        "# Sweep summary",
        "",
        "Ranked by the student's best validation accuracy; test accuracy beside it.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---", *(["---"] * len(swept)), "---:", "---:", "---:", "---:", *(["---:"] if gains else []), "---:", "---"]) + "|",
    ]
    for row in rows:
        status = "**best**" if row.get("best") else row["status"] if row["status"] == "ok" else f"failed: {row['error']}"
        cells = [
            row["job"], *(f"`{row[key]}`" if row[key] else "" for key in swept),
            percent(row.get("student_val_accuracy")), percent(row.get("student_accuracy")),
            percent(row.get("teacher_accuracy")), percent(row.get("agreement")),
            *([points(row.get("kd_vs_alone_points"))] if gains else []), str(row.get("seconds", "")), status,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    noise = gain_over_seeds(rows, swept)
    if noise:
        lines += ["", *noise]
    atomic_write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return rows


def gain_over_seeds(rows: list[dict[str, Any]], swept: list[str]) -> list[str]:
    """With ``seed`` swept and ``baseline=true``: per setting of the other swept keys, KD's gain over the seeds,
    mean ± standard error, and whether it is beyond the noise (|mean| > 2 SE). Needs two seeds or more."""
    if "seed" not in swept:
        return []
    # the settings that tell the groups apart: keys other than the seed whose value differs between jobs
    others = [key for key in swept if key != "seed" and len({row[key] for row in rows}) > 1]
    groups: dict[tuple[str, ...], list[tuple[str, float]]] = {}
    for row in rows:
        if row["status"] == "ok" and row.get("kd_vs_alone_points") is not None:
            groups.setdefault(tuple(row[key] for key in others), []).append((row["seed"], float(row["kd_vs_alone_points"])))
    lines = []
    for setting, gains in groups.items():
        if len(gains) < 2:
            continue
        values = [gain for _, gain in gains]
        mean, se = statistics.mean(values), statistics.stdev(values) / len(values) ** 0.5
        where = ", ".join(f"{key}={value}" for key, value in zip(others, setting) if value)
        seeds = ", ".join(seed for seed, _ in sorted(gains))
        verdict = "beyond the noise (|mean| > 2 SE)" if abs(mean) > 2 * se else "within the noise (|mean| <= 2 SE)"
        lines.append(f"- KD vs student alone{f' ({where})' if where else ''}, seeds {seeds}: "
                     f"{mean:+.1f} ± {se:.1f} points (mean ± SE), {verdict}")
    return lines


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
