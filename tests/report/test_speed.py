"""CPU latency and size on disk: sane numbers, the right batch, the caller's model left as it was."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from distill.errors import DistillError
from distill.report.speed import measure_latency, size_on_disk_mb


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.shapes = []
        self.modes = []
        self.grad_enabled = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        self.modes.append(self.training)
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.linear(x)


@pytest.mark.parametrize("given, batch_size", [(1, 8), (5, 3), (4, 4)])
def test_latency_is_positive_finite_and_times_the_requested_batch(given, batch_size):
    model = Recorder().train()
    result = measure_latency(model, torch.randn(given, 4), batch_size=batch_size, repeats=5, warmup=2)
    assert len(model.shapes) == 7 and set(model.shapes) == {(batch_size, 4)}
    assert not any(model.modes) and not any(model.grad_enabled)  # eval mode, inference mode
    assert model.training  # restored
    assert 0 < result["min_ms"] <= result["median_ms"] <= result["max_ms"] and math.isfinite(result["max_ms"])
    assert result["throughput"] == pytest.approx(batch_size / (result["median_ms"] / 1000))
    assert result["threads"] == torch.get_num_threads() >= 1
    assert (result["batch_size"], result["repeats"], result["warmup"], result["device"]) == (batch_size, 5, 2, "cpu")


def test_latency_rejects_bad_arguments():
    with pytest.raises(DistillError, match="at least 1"):
        measure_latency(nn.Linear(4, 3), torch.randn(1, 4), batch_size=0)
    with pytest.raises(DistillError, match="batch of at least one sample"):
        measure_latency(nn.Linear(4, 3), torch.randn(0, 4), batch_size=2)


def test_size_on_disk_is_the_saved_state_dict():
    model = nn.Sequential(nn.Linear(100, 50), nn.BatchNorm1d(50))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    size = size_on_disk_mb(model)
    assert size == pytest.approx(len(buffer.getvalue()) / 1e6)
    floats = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    assert size > floats * 4 / 1e6  # every float32 weight and buffer is in there
