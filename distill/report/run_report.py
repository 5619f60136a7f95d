"""The end-of-run report: every model measured once on the test split, the table, the plots, the files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distill.report.measurement import measure_models
from distill.report.metrics import reliability_bins
from distill.report.plots import gradient_statistics_series, plot_gradient_statistics, plot_learning_curves, plot_reliability
from distill.report.sanity import sanity_warnings
from distill.report.table import build_report, write_report



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

    Latency is timed for all models interleaved (``latency`` = ``off``, ``quick`` or ``full``);
    ``progress(done, total, what)`` is called as the measurements advance (a progress bar).
    Writes ``report.json``, ``report.md``, ``reliability.png`` and, given the
    run's ``metrics.csv``, ``learning_curves.png`` (and ``gradient_statistics.png`` when it holds the
    gradient diagnostics) into ``run_dir``; returns the report.
    """
    run_dir = Path(run_dir)
    measured = measure_models(models, test_loader, latency=latency, progress=progress)
    report = build_report(measured.rows, {**(meta or {}), "threads": torch.get_num_threads(), "latency": latency})
    teacher_logits = measured.logits["teacher"]
    num_classes = None if measured.yes_no or teacher_logits.dim() != 2 else teacher_logits.shape[1]
    report["warnings"] = sanity_warnings(report["rows"], num_classes, len(teacher_logits))

    figures = {}
    if measured.labels is not None:
        bins = {
            f"{role}: {name}": reliability_bins(measured.logits[role], measured.labels)
            for role, (name, _) in models.items()
        }
        figures["reliability"] = str(plot_reliability(bins, run_dir / "reliability.png"))
    if metrics_csv is not None and Path(metrics_csv).is_file():
        figures["learning_curves"] = str(plot_learning_curves(metrics_csv, run_dir / "learning_curves.png"))
        drawn = ("train/grad_var/", "train/grad_cos/")  # the opt-in diagnostics (diagnostics.gradients.every_n_steps=N)
        if any(column.startswith(drawn) for column in gradient_statistics_series(metrics_csv)):
            figures["gradient_statistics"] = str(plot_gradient_statistics(metrics_csv, run_dir / "gradient_statistics.png"))
    report["figures"] = figures
    write_report(report, run_dir)
    return report
