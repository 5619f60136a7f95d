"""CastInputs and on_float32_inputs: half-precision models run on the data's float32 inputs."""

from __future__ import annotations

import torch
from torch import nn

from distill.models.casting import CastInputs, on_float32_inputs


def test_a_half_precision_model_is_wrapped_and_a_float32_one_is_not():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    assert on_float32_inputs(model) is model
    half = model.to(torch.bfloat16)
    wrapped = on_float32_inputs(half)
    assert isinstance(wrapped, CastInputs) and wrapped.dtype == torch.bfloat16 and wrapped.model is half
    assert on_float32_inputs(wrapped) is wrapped  # not wrapped twice
    x = torch.randn(5, 4)
    out = wrapped.eval()(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, half.eval()(x.to(torch.bfloat16)).float(), rtol=0, atol=0)
    relu = nn.ReLU()
    assert on_float32_inputs(relu) is relu  # no parameters: as it is
