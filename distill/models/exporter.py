"""Export a student for deployment (torch.export, TorchScript, ONNX or a plain state_dict) and prove the file computes the same.

>>> from distill.models.exporter import export_model
>>> result = export_model(student, "onnx", "student.onnx", test_batch)  # doctest: +SKIP
>>> result["max_abs_diff"], result["tolerance"]  # doctest: +SKIP

The exported file is written next to its destination under a temporary name,
loaded back (``torch.export.load``, ``torch.jit.load``, an ``onnxruntime`` session, or
``torch.load(weights_only=True)`` into a freshly built model), run on the
example batch and on its first sample alone, and compared with the PyTorch
model; only when the largest absolute difference of the outputs is within the
tolerance is it renamed into place. ``python -m distill.export`` (:mod:`distill.export`)
is the command line around :func:`export_model`.

Over 300 lines for a reason: the four formats share the write-check-rename steps, kept together.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from distill.batch import output_logits
from distill.errors import DistillError, first_line
from distill.install_hint import install_command
from distill.io import atomic_write_text
from distill.models.checkpoint import load_weights
from distill.models.factory import build_model

FORMATS = ("torch_export", "torchscript", "onnx", "state_dict")
#: the largest max |exported - PyTorch| each format may show: the same kernels (torch.export, TorchScript,
#: state_dict) agree to float32 rounding; onnxruntime's kernels differ from PyTorch's in summation order
TOLERANCES = {"torch_export": 1e-5, "torchscript": 1e-5, "state_dict": 1e-5, "onnx": 1e-4}
SUFFIXES = {"torch_export": ".pt2", "torchscript": ".torchscript.pt", "onnx": ".onnx", "state_dict": ".state_dict.pt"}
INSTALL_HINT = install_command("export")
#: names of the ONNX graph's input and output; their first dimension (the batch) is dynamic
ONNX_INPUT, ONNX_OUTPUT = "input", "logits"


def check_format(fmt: str) -> str:
    """Return ``fmt`` if distill exports to it (and, for ONNX, its packages are installed); else raise."""
    fmt = str(fmt)
    if fmt not in FORMATS:
        raise DistillError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        require_onnx()
    return fmt


def require_onnx() -> tuple[Any, Any]:
    """Import ``onnx`` and ``onnxruntime``, or raise a :class:`DistillError` that says how to install them."""
    modules, missing = {}, []
    for name in ("onnx", "onnxruntime"):
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise DistillError(
            f"format=onnx needs the onnx and onnxruntime packages ({' and '.join(missing)} missing): "
            f"{install_command('export', missing)}"
        )
    return modules["onnx"], modules["onnxruntime"]


def default_filename(name: str, fmt: str) -> str:
    """``<name>.pt2``, ``<name>.torchscript.pt``, ``<name>.onnx`` or ``<name>.state_dict.pt``."""
    if fmt not in SUFFIXES:
        check_format(fmt)  # raises, naming the formats
    return f"{name}{SUFFIXES[fmt]}"


def export_model(
    model: nn.Module,
    fmt: str,
    path: str | os.PathLike,
    example_input: Tensor | Mapping[str, Tensor],
    *,
    tolerance: float | None = None,
    name: str | None = None,
    num_classes: int | None = None,
    options: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    record: bool = True,
) -> dict[str, Any]:
    """Write ``model`` to ``path`` in format ``fmt`` and check that the file computes what the model computes.

    Args:
        model: the model alone (e.g. the student, without teacher or adapters).
        fmt: ``"torch_export"`` (an ``ExportedProgram`` from ``torch.export.export``
            with a dynamic batch dimension, saved with ``torch.export.save`` as ``.pt2``;
            load with ``torch.export.load(path).module()``), ``"torchscript"``
            (``torch.jit.trace`` in eval mode, saved with ``torch.jit.save``; torch marks
            TorchScript deprecated), ``"onnx"`` (the TorchScript-based
            ``torch.onnx.export``, with a dynamic batch dimension; needs
            ``pip install 'distill[export]'``) or ``"state_dict"`` (the model's
            ``state_dict()``, for ``torch.load(weights_only=True)``).
        path: the file to write.
        example_input: a batch of real inputs (``[n, ...]``): traced with, and compared on;
            or a mapping of them, the model's keyword inputs (a tokenized text
            batch: ``input_ids``, ``attention_mask``, ...), for ``"state_dict"`` only.
        tolerance: the largest accepted max absolute difference between the
            outputs; ``None``: :data:`TOLERANCES` (1e-5, ONNX 1e-4).
        name, num_classes, options: for ``"state_dict"``, check by loading into
            ``build_model(name, num_classes, **options)`` (without: into a copy of ``model``).
        meta: extra entries for the record.
        record: also write ``<path>.json`` with the returned record.

    Returns ``format``, ``path``, ``max_abs_diff``, ``tolerance``,
    ``batch_sizes`` (those compared: the batch's and 1), ``input_shape``,
    ``output_shape`` and ``meta``. Raises :class:`DistillError`, leaving
    nothing at ``path``, when the difference exceeds the tolerance.
    """
    fmt = check_format(fmt)
    tolerance = TOLERANCES[fmt] if tolerance is None else float(tolerance)
    if not tolerance >= 0:
        raise DistillError(f"tolerance must be a number >= 0, got {tolerance}")
    keyword = isinstance(example_input, Mapping)
    tensors = list(example_input.values()) if keyword else [example_input]
    if not tensors or not all(isinstance(t, Tensor) and t.dim() > 0 and len(t) > 0 for t in tensors):
        raise DistillError("export_model: example_input must be a non-empty batch tensor (or a mapping of them) of real inputs")
    if keyword and fmt != "state_dict":
        raise DistillError(
            f"format={fmt} traces a model called on one input tensor, but this model takes keyword inputs "
            f"({', '.join(example_input)}); use format=state_dict"
        )
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = torch.device("cpu")
    on_cpu = all(t.device == cpu for t in (*model.parameters(), *model.buffers()))
    exported_model = model if on_cpu else copy.deepcopy(model).to(cpu)
    was_training = exported_model.training
    exported_model.eval()
    example = {k: v.detach().to(cpu) for k, v in example_input.items()} if keyword else example_input.detach().to(cpu)
    first = {k: v[:1] for k, v in example.items()} if keyword else example[:1]
    inputs = [example, first] if _batch_size(example) > 1 else [example]
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.no_grad():
            reference = [output_logits(_call(exported_model, x)).float() for x in inputs]
            _WRITERS[fmt](exported_model, example, tmp)
        loaded = load_exported(tmp, fmt, name=name, num_classes=num_classes, options=options, like=exported_model)
        with torch.no_grad():
            outputs = [loaded(x).float() for x in inputs]
        difference = max_abs_difference(reference, outputs)
        if not difference <= tolerance:
            raise DistillError(
                f"the {fmt} export does not compute what the PyTorch model computes: max |difference| "
                f"{difference:.3g} > tolerance {tolerance:g} on {_batch_size(example)} test inputs; nothing was "
                f"written to {path} (a model that branches on its input cannot be traced; try another "
                "format, or raise tolerance= if the difference is rounding)"
            )
        os.replace(tmp, path)
    finally:
        exported_model.train(was_training)
        if tmp.exists():
            tmp.unlink()
    result = {
        "format": fmt,
        "path": str(path),
        "max_abs_diff": difference,
        "tolerance": tolerance,
        "batch_sizes": [_batch_size(x) for x in inputs],
        "input_shape": {k: list(v.shape) for k, v in example.items()} if keyword else list(example.shape),
        "output_shape": list(reference[0].shape),
        "meta": dict(meta or {}),
    }
    if record:
        record_path = atomic_write_text(path.with_name(path.name + ".json"), json.dumps(result, indent=2, default=str) + "\n")
        result["record"] = str(record_path)
    return result


def max_abs_difference(reference: list[Tensor], outputs: list[Tensor]) -> float:
    """The largest absolute difference between matching tensors (``inf`` on a shape mismatch or a NaN)."""
    worst = 0.0
    for expected, got in zip(reference, outputs, strict=True):
        if expected.shape != got.shape:
            return math.inf
        difference = (expected - got).abs().max().item() if expected.numel() else 0.0
        if math.isnan(difference):
            return math.inf
        worst = max(worst, difference)
    return worst


def load_exported(
    path: str | os.PathLike,
    fmt: str,
    *,
    name: str | None = None,
    num_classes: int | None = None,
    options: Mapping[str, Any] | None = None,
    like: nn.Module | None = None,
) -> Callable[[Tensor], Tensor]:
    """Load an exported file back as a function from an input batch to logits (on the CPU).

    ``"state_dict"`` files are loaded with ``torch.load(weights_only=True)``
    into ``build_model(name, num_classes, **options)``, or into a copy of ``like``;
    their function also takes a mapping of keyword inputs.
    """
    fmt = check_format(fmt)
    path = Path(path)
    if fmt == "torch_export":
        program = torch.export.load(str(path)).module()
        return lambda x: output_logits(program(x))
    if fmt == "torchscript":
        with _quiet_jit():
            module = torch.jit.load(str(path), map_location="cpu")
        module.eval()
        return lambda x: output_logits(module(x))
    if fmt == "onnx":
        _, onnxruntime = require_onnx()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run(x: Tensor) -> Tensor:
            return torch.from_numpy(session.run(None, {input_name: x.detach().cpu().numpy()})[0])

        return run
    if name is not None and num_classes is not None:
        fresh = build_model(name, int(num_classes), **dict(options or {}))
    elif like is not None:
        fresh = copy.deepcopy(like)
    else:
        raise DistillError("load_exported: a state_dict needs the model's name and num_classes (or a model like it)")
    model = load_weights(fresh, path).eval()
    return lambda x: output_logits(_call(model, x))


def _call(model: nn.Module, x: Tensor | Mapping[str, Tensor]) -> Any:
    return model(**x) if isinstance(x, Mapping) else model(x)


def _batch_size(x: Tensor | Mapping[str, Tensor]) -> int:
    return len(next(iter(x.values()))) if isinstance(x, Mapping) else len(x)


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch.jit's deprecation notices (it points to torch.export; TorchScript files still load everywhere)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\..*deprecated")
        yield


def _write_torch_export(model: nn.Module, example: Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as error:  # torch.export's errors name the construct it cannot capture
        first = first_line(error)
        raise DistillError(
            f"torch.export cannot capture this model ({type(error).__name__}: {first}); try format=torchscript or state_dict"
        ) from None
    torch.export.save(program, str(path))


def _write_torchscript(model: nn.Module, example: Tensor, path: Path) -> None:
    with _quiet_jit():
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))


def _write_onnx(model: nn.Module, example: Tensor, path: Path) -> None:
    require_onnx()
    with _quiet_jit(), warnings.catch_warnings():
        # dynamo=False: the torch.export-based exporter (the default) needs onnxscript, which is not in
        # distill[export]; the TorchScript-based one, deprecated but working, needs only onnx
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
        )


def _write_state_dict(model: nn.Module, example: Tensor, path: Path) -> None:
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    torch.save(state, path)


_WRITERS: dict[str, Callable[[nn.Module, Tensor, Path], None]] = {
    "torch_export": _write_torch_export,
    "torchscript": _write_torchscript,
    "onnx": _write_onnx,
    "state_dict": _write_state_dict,
}
