"""Learning curves and reliability diagrams: valid, non-empty PNGs from Lightning's CSV log and metric bins."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from matplotlib.image import imread

from distill.errors import DistillError
from distill.report.metrics import reliability_bins
from distill.report.plots import _loss_series, plot_learning_curves, plot_reliability

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLUMNS = [
    "epoch", "step", "train/loss", "train/loss/ce", "train/loss/kd",
    "val/acc", "val/agreement", "val/loss", "val/loss/ce", "val/loss/kd", "val/teacher_acc",
]


def write_metrics_csv(path: Path, epochs: int = 3, columns=COLUMNS) -> Path:
    """A CSVLogger-style log: two step rows per epoch for training, one row per epoch for validation."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        step = 0
        for epoch in range(epochs):
            for k in range(2):
                step += 5
                kd, ce = 2.0 / (epoch + 1) + 0.1 * k, 1.5 / (epoch + 1) + 0.1 * k
                writer.writerow({"epoch": epoch, "step": step - 1, "train/loss": 0.9 * kd + 0.1 * ce,
                                 "train/loss/kd": kd, "train/loss/ce": ce})
            row = {"epoch": epoch, "step": step - 1, "val/acc": 0.5 + 0.1 * epoch, "val/agreement": 0.6 + 0.1 * epoch,
                   "val/loss": 1.0 / (epoch + 1), "val/loss/kd": 1.1 / (epoch + 1), "val/loss/ce": 0.8 / (epoch + 1)}
            if epoch == 0 and "val/teacher_acc" in columns:
                row["val/teacher_acc"] = 0.95  # logged once
            writer.writerow(row)
    return path


def assert_png(path: Path, min_size=(300, 300)) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 5_000
    image = imread(path)
    height, width = image.shape[:2]
    assert height >= min_size[0] and width >= min_size[1]
    assert image[..., :3].std() > 0.05  # something was drawn on the white canvas


def test_learning_curves_png(tmp_path):
    out = plot_learning_curves(write_metrics_csv(tmp_path / "metrics.csv"), tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    assert_png(out, min_size=(400, 1000))
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves.png"]  # no temporary file left


def test_train_steps_are_averaged_per_epoch(tmp_path):
    path = write_metrics_csv(tmp_path / "metrics.csv")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    series = _loss_series(COLUMNS, rows)
    assert set(series) == {(t, s) for t in ("total", "kd", "ce") for s in ("train", "val")}
    # epoch 1: kd steps 1.0 and 1.1 -> 1.05; ce steps 0.75 and 0.85 -> 0.8
    assert series[("kd", "train")][1] == pytest.approx(1.05)
    assert series[("ce", "train")][1] == pytest.approx(0.8)
    assert series[("kd", "val")] == pytest.approx({0: 1.1, 1: 0.55, 2: 1.1 / 3})


def test_epoch_suffixed_columns_are_preferred(tmp_path):
    columns = ["epoch", "step", "train/loss_step", "train/loss_epoch", "val/acc"]
    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,step,train/loss_step,train/loss_epoch,val/acc\n"
        "0,0,3.0,,\n0,1,1.0,,\n0,1,,2.5,\n0,1,,,0.7\n"
    )
    with path.open(newline="") as handle:
        series = _loss_series(columns, list(csv.DictReader(handle)))
    assert series == {("total", "train"): {0: 2.5}}
    assert_png(plot_learning_curves(path, tmp_path / "curves.png"))


def test_learning_curves_without_validation_metrics(tmp_path):
    # unlabelled data and no validation loader: only training losses were logged
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,train/loss/kd\n0,4,1.0,1.0\n0,9,0.8,0.8\n1,14,0.6,0.6\n")
    assert_png(plot_learning_curves(path, tmp_path / "curves.png"))


def test_learning_curves_errors(tmp_path):
    with pytest.raises(DistillError, match="no metrics file"):
        plot_learning_curves(tmp_path / "missing.csv", tmp_path / "x.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,step,lr\n0,0,0.1\n")
    with pytest.raises(DistillError, match="no train/val loss"):
        plot_learning_curves(empty, tmp_path / "x.png")


def test_reliability_png_for_teacher_and_student(tmp_path):
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (300,))
    teacher = torch.randn(300, 10) + 6 * torch.nn.functional.one_hot(labels, 10)
    student = torch.randn(300, 10) * 2 + 2 * torch.nn.functional.one_hot(labels, 10)
    bins = {"teacher": reliability_bins(teacher, labels), "student": reliability_bins(student, labels)}
    out = plot_reliability(bins, tmp_path / "reliability.png")
    assert_png(out, min_size=(400, 800))


def test_reliability_needs_a_model(tmp_path):
    with pytest.raises(DistillError, match="at least one"):
        plot_reliability({}, tmp_path / "x.png")
