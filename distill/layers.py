"""List a model's layers with their output shapes, to pick layers for the feature-based losses.

    python -m distill.layers teacher=resnet50 student=resnet18
    python -m distill.layers model=mobilenet_v3_small image_size=64

Arguments are ``key=value``: ``teacher``, ``student`` or ``model`` (model names,
as in ``build_model``), ``image_size`` (32), ``channels`` (3) and
``num_classes`` (10), matching the data the models will see. Each line is a
dotted module name, as the loss terms' ``student_layer``/``teacher_layer``
take it, and its output shape on a dummy batch of 2 (``B`` is the batch size).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from distill.cli.error_policy import fail
from distill.errors import DistillError
from distill.features import _first_tensor

MODEL_KEYS = ("teacher", "student", "model")
INT_KEYS = {"image_size": 32, "channels": 3, "num_classes": 10}
USAGE = (
    "usage: python -m distill.layers teacher=NAME student=NAME [model=NAME] "
    "[image_size=32] [channels=3] [num_classes=10]"
)


def parse_args(argv: Sequence[str]) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """``key=value`` arguments as the models to list, ``(role, name)``, and the integer settings."""
    models: list[tuple[str, str]] = []
    settings = dict(INT_KEYS)
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.removesuffix(".name")  # teacher.name=resnet50 as in the run's overrides
        if not sep or not value:
            raise DistillError(f"expected key=value, got '{arg}'; {USAGE}")
        if key in MODEL_KEYS:
            models.append((key, value))
        elif key in INT_KEYS:
            try:
                settings[key] = int(value)
            except ValueError:
                raise DistillError(f"{key} must be a whole number, got '{value}'") from None
            if settings[key] < 1:
                raise DistillError(f"{key} must be at least 1, got {value}")
        else:
            raise DistillError(f"unknown argument '{key}'; {USAGE}")
    if not models:
        raise DistillError(f"name a model; {USAGE}")
    return models, settings


def _shape(output: Any) -> str:
    try:
        tensor = _first_tensor(output)
    except DistillError:
        return type(output).__name__
    if not isinstance(tensor, Tensor):
        return type(output).__name__
    return "[" + ", ".join(["B", *(str(n) for n in tensor.shape[1:])]) + "]" if tensor.dim() else "[]"


def layer_shapes(model: nn.Module, example: Tensor) -> list[tuple[str, str, int]]:
    """``(name, output shape, number of calls)`` for every named submodule, in ``named_modules`` order.

    A module that runs several times keeps its last output, as feature capture does;
    one that never runs has shape ``"not called"``.
    """
    shapes: dict[str, str] = {}
    calls: dict[str, int] = {}
    handles = []

    def hook(name: str):
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            shapes[name] = _shape(output)
            calls[name] = calls.get(name, 0) + 1

        return record

    names = [name for name, _ in model.named_modules() if name]
    modules = dict(model.named_modules())
    for name in names:
        handles.append(modules[name].register_forward_hook(hook(name)))
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return [(name, shapes.get(name, "not called"), calls.get(name, 0)) for name in names]


def describe(role: str, name: str, settings: dict[str, int]) -> str:
    """The listing of one model, as printed."""
    from distill.models import build_model

    model = build_model(name, settings["num_classes"])
    size, channels = settings["image_size"], settings["channels"]
    example = torch.randn(2, channels, size, size)
    try:
        rows = layer_shapes(model, example)
    except RuntimeError as error:
        raise DistillError(
            f"{name} does not run on inputs [B, {channels}, {size}, {size}] ({str(error).splitlines()[0]}); "
            "set image_size= and channels= to the data's"
        ) from None
    width = max((len(row[0]) for row in rows), default=0)
    lines = [f"{role} {name} (input [B, {channels}, {size}, {size}], {settings['num_classes']} classes)"]
    for layer, shape, count in rows:
        note = f"  (runs {count} times; the last output is used)" if count > 1 else ""
        lines.append(f"  {layer:<{width}}  {shape}{note}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__.strip())
        return 0
    try:
        models, settings = parse_args(argv)
        listings = [describe(role, name, settings) for role, name in models]
    except DistillError as error:
        fail(error)  # the commands' one error policy: one line on stderr, exit 2
    print("\n\n".join(listings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
