"""List a model's layers with their output shapes, to pick layers for the feature-based losses.

    python -m distill.layers teacher=resnet50 student=resnet18
    python -m distill.layers model=mobilenet_v3_small image_size=64 depth=1
    python -m distill.layers teacher=resnet50 student=resnet18 pairs=true depth=1
    python -m distill.layers experiment=cifar100_kd data.image_size=64      # a run's models on its data

Arguments are ``key=value``: ``teacher``, ``student`` or ``model`` (model names,
as in ``build_model``), ``image_size`` (32), ``channels`` (3) and
``num_classes`` (10), matching the data the models will see. Each line is a
dotted module name, as the loss terms' ``student_layer``/``teacher_layer``
take it, and its output shape on a dummy batch of 2 (``B`` is the batch size).
``depth=N`` keeps the layers at most N names deep (``layer1`` is 1, ``layer1.0`` 2);
``pairs=true`` (with a teacher and a student) lists the student/teacher layer
pairs whose outputs have the same spatial size, which a feature term with its
adapter can compare (``=`` marks identical shapes).

Any other argument is a run's override (``experiment=``, ``data=``, ``data.*``,
``teacher.*``, ...): the run's config is composed as ``distill.run`` composes it,
and its teacher and student are listed on a real batch of its data, so the shapes
are the run's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from distill.cli.error_policy import fail
from distill.errors import DistillError, first_line
from distill.features import _first_tensor

MODEL_KEYS = ("teacher", "student", "model")
INT_KEYS = {"image_size": 32, "channels": 3, "num_classes": 10}
#: the listing's own options (not model or data settings)
VIEW_KEYS = ("depth", "pairs")
USAGE = (
    "usage: python -m distill.layers teacher=NAME student=NAME [model=NAME] "
    "[image_size=32] [channels=3] [num_classes=10] [depth=N] [pairs=true] [RUN OVERRIDES ...]"
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


def split_args(argv: Sequence[str]) -> tuple[list[str], dict[str, Any], list[str]]:
    """``argv`` as the listing's own ``key=value`` arguments, its view options (``depth``, ``pairs``), and a run's overrides.

    A run override is one whose first name is a config group or key of ``conf/config.yaml``
    (``experiment=``, ``data.image_size=``, ``+trainer.x=``, ``~data``); ``teacher=``/``student=``
    are the listing's own unless run overrides come with them.
    """
    from distill.cli.config_directory import config_files

    run_roots = {d.name for d in config_files().iterdir() if d.is_dir()} | {"seed", "cache_dir"}
    own, view, run = [], {"depth": None, "pairs": False}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        root = key.lstrip("+~").split(".")[0]
        if key in VIEW_KEYS:
            view[key] = _view_value(key, value)
        elif arg.startswith(("+", "~")) or (root in run_roots and key.removesuffix(".name") not in MODEL_KEYS):
            run.append(arg)
        else:
            own.append(arg)
    if run:  # a run's composition: its teacher and student, unless named here too
        extra = [arg for arg in own if arg.partition("=")[0].removesuffix(".name") not in ("teacher", "student")]
        if extra:
            raise DistillError(
                f"'{extra[0]}' does not combine with a run's overrides ({run[0]}); with them the run's data sets "
                "the input (data.image_size=..., data.channels=...) and teacher=/student= name its models"
            )
        run = [*own, *run]
    return own, view, run


def _view_value(key: str, value: str) -> Any:
    if key == "pairs":
        if value.lower() not in ("true", "false"):
            raise DistillError(f"pairs must be true or false, got '{value}'")
        return value.lower() == "true"
    try:
        depth = int(value)
    except ValueError:
        raise DistillError(f"depth must be a whole number, got '{value}'") from None
    if depth < 1:
        raise DistillError(f"depth must be at least 1, got {value}")
    return depth


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


def listed_model(name: str, settings: dict[str, int]) -> tuple[nn.Module, Tensor]:
    """A model built by name with a dummy input batch of 2 of the settings' size."""
    from distill.models import build_model

    size, channels = settings["image_size"], settings["channels"]
    return build_model(name, settings["num_classes"]), torch.randn(2, channels, size, size)


def run_models(overrides: Sequence[str]) -> tuple[list[tuple[str, str, nn.Module]], Any, str]:
    """The teacher and student of the run that ``overrides`` compose, a real batch of 2 of its data, and the data's name."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from distill.cli.config_directory import config_dir
    from distill.cli.key_check import check_override_keys
    from distill.cli.overrides import check_group_overrides
    from distill.cli.teachers import model_spec
    from distill.models import build_model, check_model_name
    from distill.report.measurement import evaluation_loader, example_input

    overrides = check_group_overrides(list(overrides), config_dir())
    check_override_keys(overrides, config_dir())
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose("config", overrides=list(overrides))
    except Exception as error:  # Hydra's composition errors: an unknown option or key, a bad value
        raise DistillError(f"cannot compose the run's config from {' '.join(overrides)}: {first_line(error)}") from None
    datamodule = instantiate(cfg.data)
    batch = example_input(evaluation_loader(datamodule))
    if batch is None:
        raise DistillError(f"{type(datamodule).__name__}'s batches hold no tensor inputs to run the models on")
    example = {k: v[:2] for k, v in batch.items()} if isinstance(batch, dict) else batch[:2]
    models = []
    for role in ("teacher", "student"):
        if "members" in cfg[role]:
            raise DistillError(f"the run's {role} is an ensemble; list its members by name (model=NAME)")
        spec = model_spec(cfg[role])
        check_model_name(spec.name)
        models.append((role, str(spec.name), build_model(spec.name, datamodule.num_classes, **spec.options)))
    return models, example, type(datamodule).__name__


def _input_text(example: Any) -> str:
    if isinstance(example, dict):
        return ", ".join(f"{key} [B, {', '.join(str(n) for n in value.shape[1:])}]" for key, value in example.items())
    return "[" + ", ".join(["B", *(str(n) for n in example.shape[1:])]) + "]"


def shapes_of(name: str, model: nn.Module, example: Any) -> list[tuple[str, str, int]]:
    try:
        return layer_shapes(model, example)
    except RuntimeError as error:
        raise DistillError(
            f"{name} does not run on inputs {_input_text(example)} ({first_line(error)}); "
            "set image_size= and channels= to the data's"
        ) from None


def describe(role: str, name: str, rows: list[tuple[str, str, int]], heading: str, depth: int | None = None) -> str:
    """The listing of one model, as printed: its heading, then one line per layer (at most ``depth`` names deep)."""
    rows = [row for row in rows if depth is None or row[0].count(".") < depth]
    width = max((len(row[0]) for row in rows), default=0)
    lines = [f"{role} {name} ({heading})"]
    for layer, shape, count in rows:
        note = f"  (runs {count} times; the last output is used)" if count > 1 else ""
        lines.append(f"  {layer:<{width}}  {shape}{note}")
    return "\n".join(lines)


def compatible_pairs(student: list[tuple[str, str, int]], teacher: list[tuple[str, str, int]],
                     depth: int | None = None) -> list[tuple[str, str, str, str]]:
    """``(student layer, its shape, teacher layer, its shape)`` for outputs of the same spatial size (all but the channels).

    Those are what a feature term with an adapter can compare (FitNet maps the channels with a 1x1
    convolution, or vectors ``[B, C]`` with a linear layer); layers that ran with a ``[B, C, ...]``
    output only, at most ``depth`` names deep.
    """
    def spatial(rows: list[tuple[str, str, int]]) -> list[tuple[str, str, tuple[str, ...]]]:
        kept = []
        for layer, shape, count in rows:
            dims = tuple(shape.strip("[]").split(", "))
            if count and shape.startswith("[B, ") and len(dims) >= 2 and (depth is None or layer.count(".") < depth):
                kept.append((layer, shape, dims[2:]))
        return kept

    teacher_rows = spatial(teacher)
    return [(s_layer, s_shape, t_layer, t_shape)
            for s_layer, s_shape, s_size in spatial(student)
            for t_layer, t_shape, t_size in teacher_rows if s_size == t_size]


def pairs_text(pairs: list[tuple[str, str, str, str]]) -> str:
    if not pairs:
        return "no student/teacher layer pairs with outputs of the same spatial size"
    width = max(len(p[0]) + len(p[1]) + 1 for p in pairs)
    lines = ["student layer -> teacher layer of the same spatial size (= the same shape; else an adapter maps the channels)"]
    for s_layer, s_shape, t_layer, t_shape in pairs:
        mark = "=" if s_shape == t_shape else " "
        lines.append(f"  {s_layer + ' ' + s_shape:<{width}}  {mark} {t_layer} {t_shape}")
    return "\n".join(lines)


def listings(argv: Sequence[str]) -> str:
    """What ``python -m distill.layers ARGS`` prints."""
    own, view, run = split_args(argv)
    if run:
        models, example, data_name = run_models(run)
        heading = f"input {_input_text(example)} from {data_name}"
        listed = [(role, name, shapes_of(name, model, example), heading) for role, name, model in models]
    else:
        chosen, settings = parse_args(own)
        listed = []
        for role, name in chosen:
            model, example = listed_model(name, settings)
            heading = f"input {_input_text(example)}, {settings['num_classes']} classes"
            listed.append((role, name, shapes_of(name, model, example), heading))
    parts = [describe(role, name, rows, heading, view["depth"]) for role, name, rows, heading in listed]
    if view["pairs"]:
        rows = {role: found for role, _, found, _ in listed}
        if "teacher" not in rows or "student" not in rows:
            raise DistillError("pairs=true needs a teacher and a student (teacher=NAME student=NAME)")
        parts.append(pairs_text(compatible_pairs(rows["student"], rows["teacher"], view["depth"])))
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__.strip())
        return 0
    try:
        text = listings(argv)
    except DistillError as error:
        fail(error)  # the commands' one error policy: one line on stderr, exit 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
