"""The one measuring pipeline: every model of a run (or a saved student and its teacher) on the test split, once.

The run's report (:mod:`~distill.report.run_report`) and ``python -m distill.evaluate``
(:mod:`~distill.report.evaluation_report`) both measure here, so they agree: each model's
logits are collected once, and yes/no targets (one float 0/1 per output, ``-1`` where
unknown) get decision agreement instead of the single-label numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from distill.batch import split_batch
from distill.errors import DistillError
from distill.models.fingerprint import count_parameters
from distill.report.metrics import classification_metrics, collect_logits
from distill.report.speed import compare_latency, latency_mode, size_on_disk_mb


@dataclass
class Measurement:
    """The rows of the report (one per model, in the order given) and what they were computed from."""

    rows: list[dict[str, Any]]
    #: each role's test-set logits, on the CPU
    logits: dict[str, Tensor]
    #: one integer class per sample; ``None`` for yes/no targets or unlabelled data
    labels: Tensor | None
    #: whether the targets were yes/no decisions (float), one per output
    yes_no: bool


def evaluation_loader(data: Any) -> Any:
    """The test data loader of a data module (prepared and set up), or ``data`` itself when it is a loader."""
    if hasattr(data, "test_dataloader"):
        if hasattr(data, "prepare_data"):
            data.prepare_data()
        if hasattr(data, "setup"):
            data.setup("test")
        return data.test_dataloader()
    if hasattr(data, "__iter__"):
        return data
    raise DistillError(
        f"evaluate: expected a data module with test_dataloader() or a data loader, got {type(data).__name__}"
    )


def example_input(loader: Any) -> Tensor | dict[str, Tensor] | None:
    """The inputs of the first batch (on the CPU): a tensor, the keyword tensors (text models), or ``None``."""
    parts = split_batch(next(iter(loader)))
    if parts.args and isinstance(parts.args[0], Tensor):
        return parts.args[0].cpu()
    if parts.kwargs and all(isinstance(v, Tensor) for v in parts.kwargs.values()):
        return {key: value.cpu() for key, value in parts.kwargs.items()}
    return None


def model_row(
    name: str,
    role: str,
    model: nn.Module,
    logits: Tensor,
    labels: Tensor | None,
    teacher_logits: Tensor | None,
    timing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of the report: quality from test-set logits, size, and the CPU latency columns of ``timing``."""
    row: dict[str, Any] = {"name": name, "role": role}
    row.update(classification_metrics(logits, labels, teacher_logits if role != "teacher" else None))
    row["parameters"] = count_parameters(model)
    row["size_mb"] = size_on_disk_mb(model)
    if timing:
        row.update(timing)
        if row.get("latency_b64_ms"):
            row["throughput"] = 64 / (row["latency_b64_ms"] / 1000.0)
    return row


def measure_models(
    models: Mapping[str, tuple[str, nn.Module]],
    loader: Any,
    device: str | torch.device = "cpu",
    latency: str | bool = "full",
    progress: Callable[[int, int, str], None] | None = None,
) -> Measurement:
    """Measure ``models`` (role → (name, model); roles ``teacher``, ``student``, ``baseline``) on ``loader``.

    Agreement is with the ``teacher`` row's model when there is one. Latency is timed on the
    CPU for all models interleaved (:func:`~distill.report.speed.compare_latency`; ``latency`` =
    ``off``, ``quick`` or ``full``, or a bool; inputs that are not tensors get no latency
    columns). ``progress(done, total, what)`` is called as the measurements advance (a bar).
    """
    mode = latency_mode(latency)
    example = example_input(loader) if mode != "off" else None
    progress = progress or (lambda done, total, what: None)
    total = len(models) + (example is not None)
    collected = {}
    for done, (role, (name, model)) in enumerate(models.items()):
        progress(done, total, f"testing the {role} ({name})")
        collected[role] = collect_logits(model, loader, device)
    timings: dict[str, dict[str, Any]] = {}
    if example is not None:
        progress(len(models), total, f"timing {', '.join(models)} on the CPU ({mode})")
        reference = "teacher" if "teacher" in models else next(iter(models))
        timings = compare_latency({role: model for role, (_, model) in models.items()}, example, mode, reference)
    progress(total, total, "writing the report")
    targets = next(iter(collected.values()))[1]
    yes_no = targets is not None and targets.is_floating_point()
    # the label-based numbers are for one class per sample: yes/no (float) targets get none
    labels = None if yes_no else targets
    logits = {role: z for role, (z, _) in collected.items()}
    teacher_logits = logits.get("teacher")
    for role, z in logits.items():
        if teacher_logits is not None and z.shape != teacher_logits.shape:
            raise DistillError(
                f"evaluate: the {role}'s logits have shape {tuple(z.shape)} and the teacher's "
                f"{tuple(teacher_logits.shape)}; they must predict the same classes"
            )
    rows = [
        model_row(name, role, model, logits[role], labels, teacher_logits, timings.get(role))
        for role, (name, model) in models.items()
    ]
    if yes_no and teacher_logits is not None:
        # one yes/no decision per output: agreement is the share of equal decisions, not of arg-maxes
        for row in rows:
            if row["role"] != "teacher":
                row["agreement"] = float(((logits[row["role"]] > 0) == (teacher_logits > 0)).float().mean())
    return Measurement(rows, logits, labels, yes_no)
