"""The distillation report: quality, calibration, speed and size of teacher and student, with figures.

One concept per module: :mod:`~distill.report.metrics` (accuracy, ECE, NLL,
agreement from test-set logits), :mod:`~distill.report.speed` (CPU latency,
size on disk), :mod:`~distill.report.plots` (learning curves, reliability
diagrams), :mod:`~distill.report.table` (the comparison table and its files)
and :mod:`~distill.report.per_sample` (each test sample's predictions and losses).
:mod:`~distill.report.measurement` is the one pipeline that measures models on the test split,
for the run's report (:mod:`~distill.report.run_report`, :mod:`~distill.report.run_summary`)
and for a saved student (:mod:`~distill.report.evaluation_report`, ``python -m distill.evaluate``).
"""

from distill.report.metrics import (
    classification_metrics,
    collect_logits,
    reliability_bins,
)
from distill.report.evaluation_report import evaluate
from distill.report.measurement import measure_models
from distill.report.per_sample import per_sample_losses, write_per_sample_csv
from distill.report.plots import plot_learning_curves, plot_reliability
from distill.report.speed import measure_latency, size_on_disk_mb
from distill.report.table import (
    build_report,
    print_report,
    report_markdown,
    write_report,
)

__all__ = [
    "build_report",
    "classification_metrics",
    "collect_logits",
    "evaluate",
    "measure_models",
    "measure_latency",
    "per_sample_losses",
    "plot_learning_curves",
    "plot_reliability",
    "print_report",
    "reliability_bins",
    "report_markdown",
    "size_on_disk_mb",
    "write_per_sample_csv",
    "write_report",
]
