"""What a model costs to run: CPU latency and throughput, and its size on disk."""

from __future__ import annotations

import copy
import io
import math
import statistics
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from distill.errors import DistillError


def _batch_of(example_input: Tensor | Mapping[str, Tensor], batch_size: int) -> Tensor | dict[str, Tensor]:
    """``batch_size`` samples from ``example_input`` (a batch): its first ones, repeated if it has fewer.

    A mapping (keyword inputs such as ``input_ids`` and ``attention_mask``) is cut the same way, entry by entry.
    """
    if isinstance(example_input, Mapping):
        return {key: _batch_of(value, batch_size) for key, value in example_input.items()}
    if example_input.dim() == 0 or len(example_input) == 0:
        raise DistillError(
            f"measure_latency: example_input must be a batch of at least one sample, "
            f"got shape {tuple(example_input.shape)}"
        )
    repeats = math.ceil(batch_size / len(example_input))
    if repeats > 1:
        example_input = example_input.repeat(repeats, *([1] * (example_input.dim() - 1)))
    return example_input[:batch_size].contiguous()


def measure_latency(
    model: nn.Module,
    example_input: Tensor | Mapping[str, Tensor],
    batch_size: int,
    repeats: int = 20,
    warmup: int = 3,
) -> dict[str, Any]:
    """Time the forward pass of ``model`` on the CPU at one batch size.

    ``example_input`` is a batch of inputs (``[n, ...]``, ``n >= 1``), or a
    mapping of them passed as keyword arguments (a tokenized text batch); its
    first ``batch_size`` samples are used, repeated when it has fewer. The model runs
    in eval mode under ``torch.inference_mode()``, ``warmup`` untimed times and
    then ``repeats`` timed times (``time.perf_counter``). A model whose weights
    are not on the CPU is timed on a CPU copy; the caller's model is left as it
    was (its training mode restored).

    Returns ``batch_size``, ``median_ms`` (the latency reported),
    ``min_ms``, ``max_ms``, ``throughput`` (samples per second,
    ``batch_size / median``), ``threads`` (``torch.get_num_threads()``, which
    the numbers depend on), ``repeats``, ``warmup`` and ``device`` (``"cpu"``).
    """
    batch_size, repeats, warmup = int(batch_size), int(repeats), int(warmup)
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise DistillError(
            f"measure_latency: batch_size and repeats must be at least 1 and warmup at least 0, "
            f"got {batch_size}, {repeats} and {warmup}"
        )
    cpu = torch.device("cpu")
    on_cpu = all(t.device == cpu for t in (*model.parameters(), *model.buffers()))
    timed = model if on_cpu else copy.deepcopy(model).to(cpu)
    x = _batch_of(_to_cpu(example_input), batch_size)
    run = (lambda: timed(**x)) if isinstance(x, Mapping) else (lambda: timed(x))
    was_training = timed.training
    timed.eval()
    times: list[float] = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                run()
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
    finally:
        timed.train(was_training)
    median = statistics.median(times)
    return {
        "batch_size": batch_size,
        "median_ms": 1000.0 * median,
        "min_ms": 1000.0 * min(times),
        "max_ms": 1000.0 * max(times),
        "throughput": batch_size / median if median > 0 else math.inf,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "warmup": warmup,
        "device": "cpu",
    }


def _to_cpu(example_input: Tensor | Mapping[str, Tensor]) -> Tensor | dict[str, Tensor]:
    if isinstance(example_input, Mapping):
        return {key: value.detach().cpu() for key, value in example_input.items()}
    return example_input.detach().cpu()


def size_on_disk_mb(model: nn.Module) -> float:
    """Size of ``torch.save(model.state_dict())`` in megabytes (10**6 bytes), measured in memory."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / 1e6
