"""Gradient checkpointing on the student only (``student.gradient_checkpointing=true``).

Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost")
keeps only each block's input in the forward pass and recomputes the block in the backward
pass. Only the student's blocks are recomputed: the teacher runs once per step, in eval mode
under ``torch.no_grad()``, so it keeps no activations to save and nothing of it is recomputed.
"""

from __future__ import annotations

from torch import nn

from distill.errors import DistillError


def enable_gradient_checkpointing(model: nn.Module) -> nn.Module:
    """Turn on ``transformers``' gradient checkpointing of ``model``'s blocks (non-reentrant); returns ``model``.

    Non-reentrant checkpointing works with frozen inputs (a LoRA student's frozen embeddings)
    and gives the same gradients as no checkpointing.
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise DistillError(
            f"a {type(model).__name__} does not support gradient checkpointing; it is available for Hugging Face "
            "models (student=hf_causal_lm or tiny_gpt2): set student.gradient_checkpointing=false"
        )
    settings = {"use_reentrant": False}
    if callable(getattr(model, "activation_checkpointing_enable", None)):  # transformers >= 5.x names it so
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=settings)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=settings)
    return model


def is_checkpointing(model: nn.Module) -> bool:
    """Whether any of ``model``'s blocks is recomputed in the backward pass (``transformers``' flag on its modules)."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def disable_gradient_checkpointing(model: nn.Module) -> nn.Module:
    """Turn gradient checkpointing off where a model has it on (the teacher's: it never runs a backward pass).

    The flags are cleared on every submodule, so a model inside a wrapper (a vocabulary slice) is reached too.
    """
    for module in model.modules():
        if getattr(module, "gradient_checkpointing", False) is True:
            module.gradient_checkpointing = False
    return model
