"""Capture intermediate outputs of a model by module name, with forward hooks."""

from __future__ import annotations

import re

from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor, nn

from distill.batch import output_logits
from distill.errors import DistillError, close_matches


def _first_tensor(output: Any) -> Tensor:
    """A layer's output as one tensor: transformer blocks return tuples, some layers objects."""
    if isinstance(output, Tensor):
        return output
    return output_logits(output)


_ELEMENT = re.compile(r"^(?P<module>.+)\[(?P<element>\d+)\]$")


def split_layer(layer: str) -> tuple[str, int | None]:
    """``"a.b[1]"`` -> ``("a.b", 1)``: a module name and which element of its tuple output to keep."""
    match = _ELEMENT.match(layer)
    return (match["module"], int(match["element"])) if match else (layer, None)


def _element(output: Any, element: int | None, layer: str, role: str) -> Tensor:
    if element is None:
        return _first_tensor(output)
    items = output if isinstance(output, (tuple, list)) else None
    value = items[element] if items is not None and element < len(items) else None
    if not isinstance(value, Tensor):
        got = f"a {type(output).__name__}" + (f" of {len(items)} items" if items is not None else "")
        raise DistillError(
            f"{role} layer '{layer}': its output is {got} with no tensor at position {element}; "
            "attention probabilities need attn_implementation=eager on Hugging Face models"
        )
    return value


class FeatureCapture:
    """Keeps the outputs of the named submodules of ``model`` from its latest forward pass.

    Hooks are registered once, here (and again by :meth:`attach` after
    :meth:`remove`); each forward pass overwrites the stored outputs, and
    :meth:`collect` hands them over and forgets them, so no activation outlives its step.

    Args:
        model: the model to watch.
        layers: dotted module paths as in ``model.named_modules()``, e.g. ``"layer3"``
            or ``"encoder.layer.4.output"``; for a module that returns a tuple, ``[i]``
            keeps its ``i``-th element (``"encoder.layer.1.attention.self[1]"``: a BERT
            layer's attention probabilities), else the first tensor is kept.
        role: ``"student"`` or ``"teacher"``, for error messages.
    """

    def __init__(self, model: nn.Module, layers: Iterable[str], role: str = "model") -> None:
        self.role = role
        self.features: dict[str, Tensor] = {}
        self._handles = []
        names = dict(model.named_modules())
        for layer in dict.fromkeys(layers):  # unique, in order
            module = split_layer(layer)[0]
            if module not in names or not module:
                raise DistillError(
                    f"{role} has no layer '{module}'{close_matches(module, [n for n in names if n], n=5)}; "
                    f"list the layers with `python -m distill.layers {role}=NAME`"
                )
        self.layers = list(dict.fromkeys(layers))
        self._modules = {layer: names[split_layer(layer)[0]] for layer in self.layers}
        self.attach()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> None:
        """Register the hooks (once; a no-op while they are registered)."""
        if not self._handles:
            self._handles = [m.register_forward_hook(self._hook(layer)) for layer, m in self._modules.items()]

    def _hook(self, layer: str):
        element = split_layer(layer)[1]

        def store(module: nn.Module, inputs: Any, output: Any) -> None:
            self.features[layer] = _element(output, element, layer, self.role)

        return store

    def collect(self) -> dict[str, Tensor]:
        """Return the captured features and forget them; a watched layer that did not run is an error."""
        missing = [layer for layer in self.layers if layer not in self.features]
        if missing:
            raise DistillError(
                f"{self.role} layer(s) {', '.join(missing)} did not run in the forward pass; "
                "pick layers that the model's forward() calls"
            )
        features, self.features = self.features, {}
        return features

    def clear(self) -> None:
        self.features = {}

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.features = {}


def layer_names(layers: str | Iterable[str] | None, owner: str, argument: str) -> tuple[str, ...]:
    """``"layer3"`` or ``["layer2", "layer3"]`` as a tuple of dotted module names."""
    names = (layers,) if isinstance(layers, str) else tuple(layers) if layers is not None else ()
    if not names or not all(isinstance(name, str) and name for name in names):
        raise DistillError(
            f"{owner}: {argument} must name a layer or a list of layers (e.g. {argument}=layer3), "
            f"got {layers!r}; list them with `python -m distill.layers student=NAME teacher=NAME`"
        )
    return names


def layer_pairs(
    student_layer: str | Iterable[str], teacher_layer: str | Iterable[str] | None, owner: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Student and teacher layer names matched by position; the teacher's default to the student's."""
    student = layer_names(student_layer, owner, "student_layer")
    teacher = student if teacher_layer is None else layer_names(teacher_layer, owner, "teacher_layer")
    if len(student) != len(teacher):
        raise DistillError(
            f"{owner}: student_layer and teacher_layer are matched by position, but {len(student)} "
            f"student layer(s) {list(student)} and {len(teacher)} teacher layer(s) {list(teacher)} were given"
        )
    return student, teacher


def read_features(features: Mapping[str, Tensor], layers: Iterable[str], role: str, owner: str) -> list[Tensor]:
    """The captured outputs of ``layers``, in order; a missing one means the term was not registered."""
    missing = [layer for layer in layers if layer not in features]
    if missing:
        raise DistillError(
            f"{owner} reads {role} layer(s) {', '.join(missing)} but they were not captured; "
            "use the term inside distill.DistillationModule, which records the layers the terms name"
        )
    return [features[layer] for layer in layers]
