"""The gradient-diagnostics figure: series read from a CSV log, one PNG, a one-line error without data."""

from __future__ import annotations

import pytest
from matplotlib.image import imread

from distill.errors import DistillError
from distill.report.plots import gradient_statistics_series, plot_gradient_statistics


def _write_log(path):
    # measured every 2 steps: the rows in between hold no gradient values
    header = "epoch,step,train/loss,train/grad_var/kd,train/grad_var/ce,train/grad_cos/kd__ce,train/grad_ratio/kd__ce"
    rows = ["0,0,2.0,0.5,4.0,0.25,0.1", "0,1,1.9,,,,", "0,2,1.8,0.4,3.0,-0.5,0.2", "0,3,1.7,,,,"]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_series_keep_only_the_measured_steps(tmp_path):
    series = gradient_statistics_series(_write_log(tmp_path / "metrics.csv"))
    assert series == {
        "train/grad_var/kd": {0: 0.5, 2: 0.4},
        "train/grad_var/ce": {0: 4.0, 2: 3.0},
        "train/grad_cos/kd__ce": {0: 0.25, 2: -0.5},
        "train/grad_ratio/kd__ce": {0: 0.1, 2: 0.2},
    }


def test_png_is_drawn_and_a_log_without_statistics_is_refused(tmp_path):
    out = plot_gradient_statistics(_write_log(tmp_path / "metrics.csv"), tmp_path / "gradients.png")
    image = imread(out)
    assert image.shape[0] > 300 and image.shape[1] > 1000  # 12 x 4.4 inches at 110 dpi
    (tmp_path / "plain.csv").write_text("epoch,step,train/loss\n0,0,1.0\n")
    with pytest.raises(DistillError, match="no gradient statistics; train with diagnostics.gradients.every_n_steps=N"):
        plot_gradient_statistics(tmp_path / "plain.csv", tmp_path / "none.png")
