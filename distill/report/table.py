"""The comparison table of the report: teacher, student (and a baseline), what was kept and what it bought."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.io import atomic_write_text
from distill.report.sanity import kd_gain_line, kd_gains
from distill.report.speed import SPEED_RESOLUTION

#: the columns of a row, in table order: key, header, format
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("name", "model", "text"),
    ("role", "role", "text"),
    ("accuracy", "top-1", "percent"),
    ("top5_accuracy", "top-5", "percent"),
    ("agreement", "agreement", "percent"),
    ("ece", "ECE", "percent"),
    ("nll", "NLL", "float"),
    ("parameters", "parameters", "int"),
    ("size_mb", "size MB", "float"),
    ("latency_b1_ms", "latency b1 ms", "float"),
    ("latency_b64_ms", "latency b64 ms", "float"),
    ("throughput", "samples/s", "int"),
    ("speedup_b1", "speed-up b1", "ratio"),
    ("speedup_b64", "speed-up b64", "ratio"),
    ("compression", "compression", "ratio"),
)
ROLES = ("teacher", "student", "baseline")


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if numerator is None or denominator is None:
        return None
    numerator, denominator = float(numerator), float(denominator)
    if denominator == 0 or not (math.isfinite(numerator) and math.isfinite(denominator)):
        return None
    return numerator / denominator


def build_report(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Assemble the report from one row per model and add the comparisons with the teacher.

    Each row has ``name`` and ``role`` (``"teacher"``, ``"student"`` or
    ``"baseline"``; exactly one teacher) and any of ``accuracy``,
    ``top5_accuracy``, ``agreement``, ``ece``, ``nll`` (as returned by
    :func:`~distill.report.metrics.classification_metrics`), ``parameters``,
    ``size_mb``, ``latency_b1_ms``, ``latency_b64_ms`` (median ms,
    :func:`~distill.report.speed.measure_latency`) and ``throughput``
    (samples/s at batch 64); missing numbers are ``None``. Extra keys are kept.

    Added to every row, relative to the teacher (``None`` when a number is missing):

    - ``speedup_b1``, ``speedup_b64``: teacher latency / row latency;
    - ``compression``: teacher parameters / row parameters;
    - ``size_ratio``: teacher size / row size;
    - ``accuracy_kept``: row accuracy / teacher accuracy.

    ``meta`` (device, threads, data set, run directory, ...) is stored as is.
    """
    rows = [dict(row) for row in rows]
    for row in rows:
        if "name" not in row or row.get("role") not in ROLES:
            raise DistillError(
                f"build_report: every row needs a 'name' and a 'role' in {ROLES}, got {sorted(row)} "
                f"with role {row.get('role')!r}"
            )
    teachers = [row for row in rows if row["role"] == "teacher"]
    if len(teachers) != 1:
        raise DistillError(f"build_report: expected exactly one teacher row, got {len(teachers)}")
    teacher = teachers[0]
    for row in rows:
        for key, _, _ in COLUMNS:
            row.setdefault(key, None)
        row["speedup_b1"] = _ratio(teacher["latency_b1_ms"], row["latency_b1_ms"])
        row["speedup_b64"] = _ratio(teacher["latency_b64_ms"], row["latency_b64_ms"])
        row["compression"] = _ratio(teacher["parameters"], row["parameters"])
        row["size_ratio"] = _ratio(teacher["size_mb"], row["size_mb"])
        row["accuracy_kept"] = _ratio(row["accuracy"], teacher["accuracy"])
    order = {role: i for i, role in enumerate(ROLES)}
    rows.sort(key=lambda row: order[row["role"]])  # stable: rows of one role keep their order
    return {"meta": dict(meta or {}), "rows": rows}


def _format(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "percent":
        return f"{100 * value:.2f} %"
    if kind == "float":
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if kind == "int":
        return f"{round(value):,}"
    if kind == "ratio":
        return f"{value:.2f}×"
    return str(value)


def _times(ratio: float, more: str, less: str, same: str) -> str:
    """Fill ``{r}`` in ``more`` with a ratio above 1, in ``less`` with its inverse below 1; ``same`` within 5 %."""
    if 1 / 1.05 <= ratio <= 1.05:
        return f"{same} ({ratio:.2f}×)"
    return more.format(r=f"{ratio:.1f}") if ratio > 1 else less.format(r=f"{1 / ratio:.1f}")


def _verdict(row: Mapping[str, Any], teacher: Mapping[str, Any]) -> str:
    """One line: how much quality the model kept of the teacher's, and what it bought."""
    agreement = _format(row["agreement"], "percent")
    if row["accuracy_kept"] is not None:
        kept = (
            f"keeps {100 * row['accuracy_kept']:.1f} % of the teacher's accuracy "
            f"({_format(row['accuracy'], 'percent')} vs {_format(teacher['accuracy'], 'percent')}"
            + (f", agreement {agreement})" if row["agreement"] is not None else ")")
        )
    elif row["agreement"] is not None:
        kept = f"agrees with the teacher on {agreement} of the test samples"
    else:
        kept = "has no quality numbers"
    bought = []
    if row["compression"] is not None:
        bought.append(_times(row["compression"], "{r}× fewer parameters", "{r}× more parameters", "about as many parameters"))
    if row["size_ratio"] is not None:
        bought.append(_times(row["size_ratio"], "a {r}× smaller file", "a {r}× larger file", "a file about as large"))
    speed = []
    for batch in ("1", "64"):
        ratio = row[f"speedup_b{batch}"]
        if ratio is not None and row.get(f"speedup_b{batch}_within_noise"):
            spread = f"{row[f'speedup_b{batch}_low']:.2f}–{row[f'speedup_b{batch}_high']:.2f}×"
            speed.append(
                f"not measurably faster or slower at batch {batch} ({ratio:.2f}×, within the timing noise: "
                f"rounds {spread}, and under {SPEED_RESOLUTION:.0%} is not told apart)"
            )
        elif ratio is not None:
            speed.append(f"{_times(ratio, '{r}× faster', '{r}× slower', 'about as fast')} at batch {batch}")
    text = f"the {row['role']} ({row['name']}) {kept}"
    if bought:
        text += " with " + " and ".join(bought)
    if speed:
        text += ", and runs " + " and ".join(speed)
    return "- " + text


def _noise_mark(row: Mapping[str, Any], key: str, cell: str) -> str:
    """``~1.0×`` for a speed-up the timing noise cannot tell from 1 (see the verdict line for the range)."""
    return f"~{cell}" if key.startswith("speedup_b") and row.get(f"{key}_within_noise") else cell


def report_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: a table of every model and a line per model on what it kept and bought."""
    rows = report["rows"]
    teacher = next(row for row in rows if row["role"] == "teacher")
    lines = [
        "# Distillation report",
        "",
        "| " + " | ".join(header for _, header, _ in COLUMNS) + " |",
        "|" + "|".join("---" if kind == "text" else "---:" for _, _, kind in COLUMNS) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_noise_mark(row, key, _format(row.get(key), kind)) for key, _, kind in COLUMNS) + " |")
    lines.append("")
    lines.extend(_verdict(row, teacher) for row in rows if row["role"] != "teacher")
    students = [row for row in rows if row["role"] == "student"]
    baselines = [row for row in rows if row["role"] == "baseline"]
    for baseline in baselines:
        for student in students:
            if student["accuracy"] is not None and baseline["accuracy"] is not None:
                gain = 100 * (student["accuracy"] - baseline["accuracy"])
                lines.append(
                    f"- distillation {'gained' if gain >= 0 else 'lost'} {abs(gain):.2f} accuracy points: "
                    f"student {student['name']} vs baseline {baseline['name']} trained without the teacher"
                )
    lines.extend(f"- {kd_gain_line(gain['points'])}" for gain in kd_gains(rows))
    if report.get("warnings"):
        lines.extend(["", "## Warnings", ""])
        lines.extend(f"- {warning}" for warning in report["warnings"])
    meta = report.get("meta") or {}
    if meta:
        lines.extend(["", "## Setting", ""])
        lines.extend(f"- {key}: {value}" for key, value in meta.items())
    lines.append("")
    return "\n".join(lines)


#: the console table: fewer columns and shorter numbers, to fit a terminal
_COMPACT: tuple[tuple[str, str, str], ...] = (
    ("name", "model", "text"),
    ("role", "role", "text"),
    ("accuracy", "top-1", "percent"),
    ("agreement", "agree", "percent"),
    ("ece", "ECE", "percent"),
    ("parameters", "params", "count"),
    ("latency_b1_ms", "ms b1", "float"),
    ("speedup_b1", "speed-up", "ratio"),
    ("compression", "compr.", "ratio"),
)


def _compact(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "percent":
        return f"{100 * value:.1f}%"
    if kind == "count":
        for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= limit:
                return f"{value / limit:.1f}{suffix}"
        return str(round(value))
    if kind == "ratio":
        return f"{value:.1f}×"
    return _format(value, kind)


def print_report(report: Mapping[str, Any], console: Any = None) -> None:
    """Print a compact table of the report to the console (Rich if installed, else the Markdown)."""
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(report_markdown(report), flush=True)
        return
    rows = report["rows"]
    table = Table(title="Distillation report", header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), pad_edge=False)
    for key, header, kind in _COMPACT:
        cells = [header, *(_noise_mark(row, key, _compact(row.get(key), kind)) for row in rows)]
        table.add_column(
            header, justify="left" if kind == "text" else "right", no_wrap=True,
            min_width=max(len(c) for c in cells),
        )
    for row in rows:
        table.add_row(*(_noise_mark(row, key, _compact(row.get(key), kind)) for key, _, kind in _COMPACT))
    # piped output (CI, clusters) gets a fixed width rather than Rich's 80-column default
    console = console or Console(width=None if sys.stdout.isatty() else 110)
    console.print(table)
    teacher = next(row for row in rows if row["role"] == "teacher")
    for row in rows:
        if row["role"] != "teacher":
            console.print(_verdict(row, teacher), markup=False, highlight=False)
    for gain in kd_gains(rows):
        console.print(kd_gain_line(gain["points"]), markup=False, highlight=False)
    for warning in report.get("warnings") or []:
        console.print(f"warning: {warning}", markup=False, highlight=False)


def write_report(report: Mapping[str, Any], directory: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``directory`` atomically; return their paths."""
    directory = Path(directory)
    json_path = atomic_write_text(directory / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    md_path = atomic_write_text(directory / "report.md", report_markdown(report))
    return json_path, md_path
