"""Start a shallower transformer from a deeper one's weights: embeddings plus chosen encoder layers.

DistilBERT (Sanh et al., 2019) started its 6-layer student from every other
layer of the 12-layer BERT; :func:`copy_layers` does this for any pair of
models whose encoder layers sit in one ``nn.ModuleList`` of the same class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from distill.errors import DistillError

log = logging.getLogger(__name__)


def every_other(num_layers: int) -> list[int]:
    """Source layers ``0, 2, 4, ...`` for a student with ``num_layers`` layers."""
    return list(range(0, 2 * int(num_layers), 2))


def layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The dotted name and the ``nn.ModuleList`` of ``model``'s encoder layers (the longest list of one class)."""
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1
    ]
    if not candidates:
        raise DistillError(f"{type(model).__name__} has no list of encoder layers to copy from; set init_layers=null")
    return max(candidates, key=lambda item: len(item[1]))


def copy_layers(student: nn.Module, source: nn.Module, layers: Sequence[int], source_name: str = "the source") -> None:
    """Copy ``source``'s weights into ``student``: its layer ``layers[i]`` into layer ``i``, everything else by name.

    Both are base models (``model.base_model``: embeddings, encoder, ...).
    Weights the source lacks (e.g. a pooler) keep their initial values; a
    shape mismatch (another hidden size) is an error.
    """
    student_prefix, student_layers = layer_list(student)
    source_prefix, source_layers = layer_list(source)
    given = layers
    layers = [int(i) for i in layers] if not isinstance(layers, (str, bytes)) else None
    if layers is None or len(layers) != len(student_layers):
        raise DistillError(
            f"init_layers must list one source layer per student layer ({len(student_layers)}), got {given!r}; "
            "or give init_layers=every_other"
        )
    if any(not 0 <= i < len(source_layers) for i in layers):
        raise DistillError(
            f"init_layers {layers} name layers outside 0..{len(source_layers) - 1} of {source_name} "
            f"({len(source_layers)} layers)"
        )
    source_state = source.state_dict()
    copied, kept = {}, []
    for key, value in student.state_dict().items():
        source_key = key
        if key.startswith(student_prefix + "."):
            index, _, rest = key[len(student_prefix) + 1:].partition(".")
            source_key = f"{source_prefix}.{layers[int(index)]}.{rest}"
        if source_key not in source_state:
            kept.append(key)
            continue
        if source_state[source_key].shape != value.shape:
            raise DistillError(
                f"cannot start the student from {source_name}: {key} has shape {tuple(value.shape)} but "
                f"{source_key} has {tuple(source_state[source_key].shape)} (a different hidden size?); "
                "set init_layers=null or keep the sizes of the source"
            )
        copied[key] = source_state[source_key]
    with torch.no_grad():
        student.load_state_dict(copied, strict=False)
    log.info("Student initialised from %s layers %s (%d tensors copied, %d kept)", source_name, layers, len(copied), len(kept))
