"""Figures of the report: learning curves from Lightning's CSV log, and reliability diagrams.

Figures are drawn with matplotlib's object-oriented API on the Agg canvas, so
nothing here needs a display or changes pyplot's global backend.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from distill.errors import DistillError
from distill.io import _atomic_write

_STYLE = {
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
}
# validation numbers that are fractions (plotted in the right panel), in display order
_FRACTIONS = ("acc", "agreement", "teacher_acc")
_FRACTION_LABELS = {"acc": "student accuracy", "agreement": "agreement with teacher", "teacher_acc": "teacher accuracy"}


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, out_png: str | Path) -> Path:
    return _atomic_write(out_png, lambda tmp: figure.savefig(tmp, format="png"))


def _read_csv_log(metrics_csv: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(metrics_csv)
    if not path.is_file():
        raise DistillError(f"plot_learning_curves: no metrics file at {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _number(text: str | None) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _per_epoch(rows: list[dict[str, str]], column: str) -> dict[int, float]:
    """The mean of a column's non-empty values per epoch (step rows of an epoch are averaged)."""
    values: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        value, epoch = _number(row.get(column)), _number(row.get("epoch"))
        if value is not None and epoch is not None:
            values[int(epoch)].append(value)
    return {epoch: sum(v) / len(v) for epoch, v in sorted(values.items())}


def _loss_series(columns: list[str], rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[int, float]]:
    """``{(term, stage): {epoch: value}}`` for every loss column of the train and val stages.

    ``train/loss/kd`` gives term ``kd`` and ``train/loss`` the term ``total``.
    A metric logged per step and per epoch (``..._step`` / ``..._epoch``) is
    read from its ``_epoch`` column.
    """
    series: dict[tuple[str, str], dict[int, float]] = {}
    names = set(columns)
    for column in columns:
        base = column.removesuffix("_epoch")
        if column.endswith("_step") or (base == column and f"{column}_epoch" in names):
            continue
        for stage in ("train", "val"):
            if base == f"{stage}/loss":
                term = "total"
            elif base.startswith(f"{stage}/loss/"):
                term = base[len(f"{stage}/loss/"):]
            else:
                continue
            values = _per_epoch(rows, column)
            if values:
                series[(term, stage)] = values
    return series


def plot_learning_curves(metrics_csv: str | Path, out_png: str | Path, title: str | None = None) -> Path:
    """Draw the training history in Lightning's CSVLogger ``metrics.csv`` into one PNG.

    Left panel: every loss term per epoch, training (solid; its step rows
    averaged per epoch) and validation (dashed), one colour per term. Right
    panel: validation accuracy and teacher agreement per epoch, with the
    teacher's accuracy as a dashed reference line. ``title`` defaults to
    "Learning curves". Returns the PNG's path.
    """
    columns, rows = _read_csv_log(metrics_csv)
    if "epoch" not in columns:
        raise DistillError(f"plot_learning_curves: {metrics_csv} has no 'epoch' column; is it a CSVLogger metrics.csv?")
    losses = _loss_series(columns, rows)
    fractions = {
        name: _per_epoch(rows, column)
        for name in _FRACTIONS
        for column in (f"val/{name}", f"val/{name}_epoch")
        if column in columns and _per_epoch(rows, column)
    }
    if not losses and not fractions:
        raise DistillError(f"plot_learning_curves: {metrics_csv} holds no train/val loss or val metric values")

    with matplotlib.rc_context(_STYLE):
        figure = _new_figure(12, 4.8)
        loss_ax, val_ax = figure.subplots(1, 2)
        terms = sorted({term for term, _ in losses}, key=lambda t: (t != "total", t))
        colours = matplotlib.colormaps["tab10"]
        for i, term in enumerate(terms):
            for stage, style in (("train", "-"), ("val", "--")):
                values = losses.get((term, stage))
                if not values:
                    continue
                loss_ax.plot(
                    list(values), list(values.values()), style, marker="o", markersize=4,
                    color=colours(i % 10), linewidth=2.2 if term == "total" else 1.5,
                    label=f"{stage} {term}",
                )
        all_values = [v for series in losses.values() for v in series.values()]
        if all_values and min(all_values) > 0 and max(all_values) / min(all_values) > 100:  # spans decades
            loss_ax.set_yscale("log")
        loss_ax.set_title("Loss per epoch (train solid, val dashed)")
        loss_ax.set_xlabel("epoch")
        loss_ax.set_ylabel("loss")
        if losses:
            loss_ax.legend(loc="best", ncols=2 if len(losses) > 6 else 1)
        else:
            loss_ax.text(0.5, 0.5, "no loss values logged", ha="center", va="center", transform=loss_ax.transAxes)
        loss_ax.grid(alpha=0.3)

        for name, values in fractions.items():
            label = _FRACTION_LABELS[name]
            if name == "teacher_acc":  # logged once: the same teacher every epoch
                value = 100 * sum(values.values()) / len(values)
                val_ax.axhline(value, color="black", linestyle="--", linewidth=1.2, label=f"{label} ({value:.1f} %)")
            else:
                val_ax.plot(list(values), [100 * v for v in values.values()], "-", marker="o", markersize=4,
                            linewidth=1.8, label=label)
        val_ax.set_title("Validation accuracy and agreement")
        val_ax.set_xlabel("epoch")
        val_ax.set_ylabel("percent of validation samples")
        if fractions:
            val_ax.legend(loc="best")
        else:
            val_ax.text(0.5, 0.5, "no validation metrics logged\n(unlabelled data?)", ha="center", va="center",
                        transform=val_ax.transAxes)
        val_ax.grid(alpha=0.3)
        for ax in (loss_ax, val_ax):
            ax.xaxis.get_major_locator().set_params(integer=True)
        figure.suptitle(title or "Learning curves")
        return _save(figure, out_png)


def plot_reliability(bins_by_model: Mapping[str, Mapping[str, Any]], out_png: str | Path) -> Path:
    """Reliability diagrams side by side, one per model (e.g. teacher and student).

    ``bins_by_model`` maps a model's display name to the output of
    :func:`distill.report.metrics.reliability_bins`. Each panel shows the
    accuracy per confidence bin as bars, the gap to the bin's mean confidence
    shaded, and the diagonal of perfect calibration; the ECE is in its title.
    Returns the PNG's path.
    """
    if not bins_by_model:
        raise DistillError("plot_reliability: give at least one model's reliability bins")
    with matplotlib.rc_context(_STYLE):
        figure = _new_figure(5.2 * len(bins_by_model), 5.0)
        axes = figure.subplots(1, len(bins_by_model), squeeze=False)[0]
        for ax, (name, bins) in zip(axes, bins_by_model.items()):
            edges = bins["edges"]
            lefts = edges[:-1]
            widths = [b - a for a, b in itertools.pairwise(edges)]
            filled = [i for i, c in enumerate(bins["count"]) if c > 0]
            ax.bar([lefts[i] for i in filled], [bins["accuracy"][i] for i in filled],
                   width=[widths[i] for i in filled], align="edge", color="tab:blue", edgecolor="black",
                   linewidth=0.6, label="accuracy")
            gap_bottom = [min(bins["accuracy"][i], bins["confidence"][i]) for i in filled]
            gap_height = [abs(bins["confidence"][i] - bins["accuracy"][i]) for i in filled]
            ax.bar([lefts[i] for i in filled], gap_height, bottom=gap_bottom, width=[widths[i] for i in filled],
                   align="edge", facecolor="none", edgecolor="crimson", hatch="///", linewidth=1.0,
                   label="gap to mean confidence")
            ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1.5, label="perfect calibration")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.set_xlabel("confidence (top-1 probability)")
            ax.set_ylabel("accuracy")
            total = sum(bins["count"])
            ax.set_title(f"{name}: ECE {100 * bins['ece']:.2f} %  (n={total})")
            ax.legend(loc="upper left")
            ax.grid(alpha=0.3)
        figure.suptitle("Reliability diagrams")
        return _save(figure, out_png)


def gradient_statistics_series(metrics_csv: str | Path) -> dict[str, dict[int, float]]:
    """``{column: {step: value}}`` for the ``train/grad_var/``, ``train/grad_cos/`` and ``train/grad_ratio/`` columns.

    These are written by :class:`~distill.diagnostics.GradientStatistics` every N steps; rows
    without a value (the steps in between) are skipped.
    """
    columns, rows = _read_csv_log(metrics_csv)
    series: dict[str, dict[int, float]] = {}
    for column in columns:
        if column.startswith(("train/grad_var/", "train/grad_cos/", "train/grad_ratio/")):
            values = {int(s): v for row in rows if (v := _number(row.get(column))) is not None
                      and (s := _number(row.get("step"))) is not None}
            if values:
                series[column] = dict(sorted(values.items()))
    return series


def plot_gradient_statistics(metrics_csv: str | Path, out_png: str | Path) -> Path:
    """Draw the gradient diagnostics per step next to the learning curves: variances (left), cosines (right).

    Left: each term's per-sample gradient variance (log scale). Right: the cosine
    between each pair of terms' gradients, with 0 marked (below it, they pull
    against each other). Returns the PNG's path.
    """
    series = gradient_statistics_series(metrics_csv)
    variances = {k.removeprefix("train/grad_var/"): v for k, v in series.items() if k.startswith("train/grad_var/")}
    cosines = {k.removeprefix("train/grad_cos/"): v for k, v in series.items() if k.startswith("train/grad_cos/")}
    if not variances and not cosines:
        raise DistillError(
            f"plot_gradient_statistics: {metrics_csv} holds no gradient statistics; "
            "train with diagnostics.gradients.every_n_steps=N"
        )
    with matplotlib.rc_context(_STYLE):
        figure = _new_figure(12, 4.4)
        var_ax, cos_ax = figure.subplots(1, 2)
        for name, values in variances.items():
            var_ax.plot(list(values), list(values.values()), "-", marker="o", markersize=3, label=name)
        if variances and min(v for s in variances.values() for v in s.values()) > 0:
            var_ax.set_yscale("log")
        var_ax.set_title("Per-sample gradient variance per term")
        for name, values in cosines.items():
            cos_ax.plot(list(values), list(values.values()), "-", marker="o", markersize=3, label=name.replace("__", " vs "))
        cos_ax.axhline(0.0, color="black", linewidth=1.0)
        cos_ax.set_ylim(-1.05, 1.05)
        cos_ax.set_title("Cosine between terms' gradients")
        for ax, values in ((var_ax, variances), (cos_ax, cosines)):
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            if values:
                ax.legend(loc="best")
        figure.suptitle("Gradient diagnostics")
        return _save(figure, out_png)
