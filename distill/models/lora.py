"""LoRA students: low-rank adapters on a frozen base model, trained alone (``student.lora.r=8``).

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") adds ``B @ A``
(rank ``r``, scaled by ``alpha / r``) to chosen linear layers and trains only ``A`` and ``B``.
The adapters come from the optional ``peft`` package (the ``lora`` extra). On export they
are merged into the weights (:func:`merged_copy`), so the saved model is a plain one.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import nn

from distill.errors import DistillError, first_line
from distill.install_hint import install_command


def with_lora(
    model: nn.Module,
    r: int,
    alpha: float = 16.0,
    dropout: float = 0.0,
    target_modules: str | Sequence[str] | None = None,
) -> nn.Module:
    """``model`` with LoRA adapters of rank ``r`` (a ``peft.PeftModel``); only the adapters require grad.

    Args:
        model: a Hugging Face causal LM.
        r: the adapters' rank (>= 1).
        alpha: the scale ``alpha / r`` of the adapters' output.
        dropout: dropout on the adapters' input.
        target_modules: the names of the layers that get adapters (a name matches a layer whose
            dotted path ends with it); ``None``: peft's default for the model type (GPT-2:
            ``c_attn``; Llama: ``q_proj``, ``v_proj``).
    """
    peft = _peft()
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise DistillError(f"lora.r={r!r}: the adapters' rank must be an integer >= 1 (e.g. student.lora.r=8)")
    if not 0.0 <= float(dropout) < 1.0:
        raise DistillError(f"lora.dropout={dropout}: give a probability in [0, 1)")
    # a string would be a regex to peft: one name is a list of one
    targets = [target_modules] if isinstance(target_modules, str) else None if target_modules is None else list(target_modules)
    settings = peft.LoraConfig(r=r, lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=targets,
                               task_type="CAUSAL_LM")
    try:
        return peft.get_peft_model(model, settings)
    except ValueError as error:  # no target module found, or none for this model type
        names = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"})
        raise DistillError(
            f"cannot put LoRA adapters on this {type(model).__name__}: {first_line(error)}; "
            f"set lora.target_modules to some of its linear layers: {names}"
        ) from None


def is_lora(model: nn.Module) -> bool:
    """Whether ``model`` is a ``peft`` model with adapters (without importing peft when it is not installed)."""
    return hasattr(model, "peft_config") and callable(getattr(model, "disable_adapter", None))


def merged_copy(model: nn.Module) -> nn.Module:
    """A copy of a LoRA ``model`` with its adapters merged into the base weights (a plain model); ``model`` is untouched.

    A copy, not in place: the run goes on using the adapted model (its report, and a teacher that is the
    base model with adapters disabled), and unmerging would not restore the base weights bit for bit.
    """
    if not is_lora(model):
        return model
    return copy.deepcopy(model).merge_and_unload()


def adapter_parameter_names(model: nn.Module) -> list[str]:
    """The names of the parameters that belong to the adapters (what a LoRA student trains)."""
    return [name for name, _ in model.named_parameters() if is_adapter_name(name)]


def is_adapter_name(name: str) -> bool:
    """Whether a parameter (or state-dict key) name is an adapter's (``...lora_A.default.weight``)."""
    return any(part.startswith("lora_") for part in name.split("."))


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise DistillError(f"LoRA students need the peft package (the lora extra): {install_command('lora')}") from None
    return peft

