"""Which weights of a model are not finite (NaN or infinite): a diverged or corrupted model."""

from __future__ import annotations

import torch
from torch import nn


def non_finite_entries(model: nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers of ``model`` holding a NaN or an infinity."""
    return [
        name for name, value in model.state_dict().items()
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
