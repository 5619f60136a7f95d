"""The end-of-run report: every model measured on the test set, the table, the plots, the files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from distill.batch import split_batch
from distill.models.fingerprint import count_parameters
from distill.report.metrics import (
    classification_metrics,
    collect_logits,
    reliability_bins,
)
from distill.report.plots import plot_learning_curves, plot_reliability
from distill.report.sanity import sanity_warnings
from distill.report.speed import compare_latency, measure_latency, size_on_disk_mb
from distill.report.table import build_report, write_report


def _example_input(dataloader: Any) -> Tensor | dict[str, Tensor]:
    """The first batch's inputs on the CPU: a tensor, or the keyword inputs (text models)."""
    parts = split_batch(next(iter(dataloader)))
    if parts.args and isinstance(parts.args[0], Tensor):
        return parts.args[0].cpu()
    if parts.kwargs and all(isinstance(v, Tensor) for v in parts.kwargs.values()):
        return {key: value.cpu() for key, value in parts.kwargs.items()}
    raise ValueError("latency is measured on tensor inputs or keyword tensors")


def model_row(
    name: str,
    role: str,
    model: nn.Module,
    logits: Tensor,
    labels: Tensor | None,
    teacher_logits: Tensor | None,
    example_input: Tensor | Mapping[str, Tensor] | None,
) -> dict[str, Any]:
    """One row of the report: quality from test-set logits, size, and CPU latency at batch 1 and 64."""
    row: dict[str, Any] = {"name": name, "role": role}
    row.update(classification_metrics(logits, labels, teacher_logits if role != "teacher" else None))
    row["parameters"] = count_parameters(model)
    row["size_mb"] = size_on_disk_mb(model)
    if example_input is not None:
        single = measure_latency(model, example_input, batch_size=1)
        batch = measure_latency(model, example_input, batch_size=64)
        row.update(
            latency_b1_ms=single["median_ms"],
            latency_b64_ms=batch["median_ms"],
            throughput=batch["throughput"],
            threads=batch["threads"],
        )
    return row


def _latency_columns(timing: Mapping[str, Any] | None) -> dict[str, Any]:
    """A row's latency columns from :func:`compare_latency`, with the throughput at batch 64."""
    if not timing:
        return {}
    columns = dict(timing)
    if columns.get("latency_b64_ms"):
        columns["throughput"] = 64 / (columns["latency_b64_ms"] / 1000.0)
    return columns


def distillation_report(
    models: Mapping[str, tuple[str, nn.Module]],
    test_loader: Any,
    run_dir: str | Path,
    metrics_csv: str | Path | None = None,
    meta: Mapping[str, Any] | None = None,
    latency: str = "full",
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Measure ``models`` (role → (name, model); roles ``teacher``, ``student``, ``baseline``) and write the report.

    Latency is timed for all models interleaved (:func:`~distill.report.speed.compare_latency`,
    ``latency`` = ``off``, ``quick`` or ``full``). ``progress(done, total, what)`` is called as the
    measurements advance (a progress bar). Writes ``report.json``, ``report.md``,
    ``reliability.png`` and, given the run's ``metrics.csv``, ``learning_curves.png`` into
    ``run_dir``; returns the report.
    """
    run_dir = Path(run_dir)
    try:
        example = _example_input(test_loader)
    except ValueError:
        example = None  # keyword inputs (text models): no latency columns
    progress = progress or (lambda done, total, what: None)
    total = len(models) + (latency != "off" and example is not None)
    collected = {}
    for done, (role, (name, model)) in enumerate(models.items()):
        progress(done, total, f"testing the {role} ({name})")
        collected[role] = collect_logits(model, test_loader)
    timings: dict[str, dict[str, Any]] = {}
    if latency != "off" and example is not None:
        progress(len(models), total, f"timing {', '.join(models)} on the CPU ({latency})")
        timings = compare_latency({role: model for role, (_, model) in models.items()}, example, latency)
    progress(total, total, "writing the report")
    yes_no = collected["teacher"][1] is not None and collected["teacher"][1].is_floating_point()
    # the label-based numbers are for one class per sample: yes/no (float) targets get none
    logits = {role: (z, None if yes_no else y) for role, (z, y) in collected.items()}
    teacher_logits = logits["teacher"][0]
    rows = [
        {**model_row(name, role, model, *logits[role], teacher_logits, None), **_latency_columns(timings.get(role))}
        for role, (name, model) in models.items()
    ]
    if yes_no:  # one yes/no decision per output: agreement is the share of equal decisions, not of arg-maxes
        for row in rows:
            if row["role"] != "teacher" and logits[row["role"]][0].shape == teacher_logits.shape:
                row["agreement"] = float(((logits[row["role"]][0] > 0) == (teacher_logits > 0)).float().mean())
    report = build_report(rows, {**(meta or {}), "threads": torch.get_num_threads(), "latency": latency})
    num_classes = None if yes_no or teacher_logits.dim() != 2 else teacher_logits.shape[1]
    report["warnings"] = sanity_warnings(report["rows"], num_classes, len(teacher_logits))

    figures = {}
    labels = logits["teacher"][1]
    if labels is not None:
        bins = {f"{role}: {name}": reliability_bins(logits[role][0], labels) for role, (name, _) in models.items()}
        figures["reliability"] = str(plot_reliability(bins, run_dir / "reliability.png"))
    if metrics_csv is not None and Path(metrics_csv).is_file():
        figures["learning_curves"] = str(plot_learning_curves(metrics_csv, run_dir / "learning_curves.png"))
    report["figures"] = figures
    write_report(report, run_dir)
    return report
