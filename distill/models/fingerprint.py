"""A hash of a model's weights, to prove the teacher was not changed and to record which teacher was used."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, dtypes, shapes and bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if not isinstance(tensor, torch.Tensor):
            continue
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def dtypes_of(model: nn.Module) -> tuple[str, ...]:
    """The dtypes of the model's parameters and buffers, in order: a cast by the Trainer's precision changes them."""
    return tuple(str(t.dtype) for t in (*model.parameters(), *model.buffers()))


def count_parameters(model: nn.Module) -> int:
    """The model's parameters; for a teacher that owns none but runs on another model's (the LoRA student's base,
    :class:`~distill.teachers.adapters_disabled.AdaptersDisabled`), those it runs on."""
    base = getattr(model, "base_parameters", None)
    tensors = base().values() if callable(base) else model.parameters()
    return sum(p.numel() for p in tensors)
