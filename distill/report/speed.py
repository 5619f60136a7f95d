"""What a model costs to run: CPU latency and throughput, and its size on disk."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import statistics
from collections.abc import Callable, Iterator, Mapping
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
    """Time the forward pass of ``model`` on the CPU at one batch size, with ``torch.utils.benchmark.Timer``.

    ``example_input`` is a batch of inputs (``[n, ...]``, ``n >= 1``), or a
    mapping of them passed as keyword arguments (a tokenized text batch); its
    first ``batch_size`` samples are used, repeated when it has fewer. The model runs
    in eval mode under ``torch.inference_mode()``, ``warmup`` untimed times and
    then ``repeats`` timed times, each one call timed by the Timer (``timer.timeit(1)``,
    which first makes two untimed calls of its own) on ``torch.get_num_threads()``
    threads. A model whose weights are not on the CPU is timed on a CPU copy; the
    caller's model is left as it was (its training mode restored).

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
    threads = torch.get_num_threads()
    x = _batch_of(_to_cpu(example_input), batch_size)
    with _on_cpu_for_timing({"model": model}) as timed:
        run = _forward(timed["model"], x)
        for _ in range(warmup):
            run()
        timer = _forward_timer(run, threads)
        times = [timer.timeit(1).median for _ in range(repeats)]
    median = statistics.median(times)
    return {
        "batch_size": batch_size,
        "median_ms": 1000.0 * median,
        "min_ms": 1000.0 * min(times),
        "max_ms": 1000.0 * max(times),
        "throughput": batch_size / median if median > 0 else math.inf,
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
        "device": "cpu",
    }


#: latency settings (``report.latency``): batch sizes, timed rounds, seconds per round
LATENCY_MODES: dict[str, tuple[tuple[int, ...], int, float]] = {
    "off": ((), 0, 0.0),
    "quick": ((1,), 7, 0.01),
    "full": ((1, 64), 9, 0.03),
}


def latency_mode(value: str | bool) -> str:
    """``report.latency`` as a key of :data:`LATENCY_MODES` (``false`` is ``off``, ``true`` is ``full``)."""
    mode = {True: "full", False: "off"}[value] if isinstance(value, bool) else value
    if mode not in LATENCY_MODES:
        raise DistillError(f"report.latency={value!r} is not a latency setting; use one of {', '.join(LATENCY_MODES)}")
    return mode


#: the smallest speed difference the report tells apart from none: in one process, memory layout and cache effects
#: alone move an exact copy's latency by up to ~15 % (``tests/report/test_speed.py``), so a ratio within 10 % of 1
#: is never called faster or slower
SPEED_RESOLUTION = 0.10


def _quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values``, linear between order statistics (numpy's default)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def compare_latency(
    models: Mapping[str, nn.Module],
    example_input: Tensor | Mapping[str, Tensor],
    mode: str = "full",
    reference: str = "teacher",
) -> dict[str, dict[str, Any]]:
    """Time every model's CPU forward pass in interleaved rounds, so that a drifting machine slows all alike.

    ``models`` maps a role to a model (``reference`` among them); ``mode`` is a key of
    :data:`LATENCY_MODES` (``off``: nothing is timed). Each model is warmed up, then each round times
    every model in turn (the order reversed every other round) with ``torch.utils.benchmark.Timer``
    on ``torch.get_num_threads()`` threads, the same number of calls for each (about the round's
    seconds for the slowest, the fastest of three blocks). Per role and batch size
    ``b`` it returns ``latency_b{b}_ms`` (median over rounds), ``latency_b{b}_iqr_ms`` (their
    interquartile range) and ``threads``; every other role also gets ``speedup_b{b}_low`` and
    ``speedup_b{b}_high`` (the quartiles of the per-round ratios reference / model) and
    ``speedup_b{b}_within_noise``: true when that range reaches into 1 ± :data:`SPEED_RESOLUTION`
    (``[1/1.1, 1.1]``), so the timing cannot tell the two apart.
    """
    if mode not in LATENCY_MODES:
        raise DistillError(f"report.latency={mode!r} is not a latency setting; use one of {', '.join(LATENCY_MODES)}")
    batch_sizes, rounds, round_seconds = LATENCY_MODES[mode]
    if reference not in models:
        raise DistillError(f"compare_latency: the reference role {reference!r} is not among {sorted(models)}")
    threads = torch.get_num_threads()
    result: dict[str, dict[str, Any]] = {role: {"threads": threads} for role in models}
    with _on_cpu_for_timing(models) as timed:
        for batch_size in batch_sizes:
            x = _batch_of(_to_cpu(example_input), batch_size)
            timers, singles = {}, []
            for role, m in timed.items():
                timers[role] = _forward_timer(_forward(m, x), threads)
                # warm-up: first calls allocate memory, pick kernels and wake the thread pool
                timers[role].blocked_autorange(min_run_time=2 * round_seconds)
                singles.append(timers[role].timeit(3).median)
            # the same number of calls for every model: unequal runs would time unequal overheads
            calls = max(1, round(round_seconds / max(max(singles), 1e-9)))
            times: dict[str, list[float]] = {role: [] for role in timed}
            for n in range(rounds):
                for role in (list(timed) if n % 2 == 0 else list(reversed(timed))):
                    # the fastest of a few short blocks: a block the OS interrupted does not count
                    times[role].append(min(timers[role].timeit(calls).median for _ in range(3)))
            for role, seconds in times.items():
                result[role][f"latency_b{batch_size}_ms"] = 1000.0 * statistics.median(seconds)
                result[role][f"latency_b{batch_size}_iqr_ms"] = 1000.0 * (_quantile(seconds, 0.75) - _quantile(seconds, 0.25))
                if role == reference:
                    continue
                ratios = [t / s for t, s in zip(times[reference], seconds)]
                low, high = _quantile(ratios, 0.25), _quantile(ratios, 0.75)
                result[role].update({
                    f"speedup_b{batch_size}_low": low,
                    f"speedup_b{batch_size}_high": high,
                    f"speedup_b{batch_size}_within_noise": (
                        low <= 1.0 + SPEED_RESOLUTION and high >= 1.0 / (1.0 + SPEED_RESOLUTION)
                    ),
                })
    return result


@contextlib.contextmanager
def _on_cpu_for_timing(models: Mapping[str, nn.Module]) -> Iterator[dict[str, nn.Module]]:
    """``models`` ready to time: each on the CPU (a copy where its weights are elsewhere), in eval mode, under
    ``torch.inference_mode()``; the caller's training modes restored afterwards."""
    cpu = torch.device("cpu")
    timed = {
        role: m if all(t.device == cpu for t in (*m.parameters(), *m.buffers())) else copy.deepcopy(m).to(cpu)
        for role, m in models.items()
    }
    modes = {role: m.training for role, m in timed.items()}
    try:
        for m in timed.values():
            m.eval()
        with torch.inference_mode():
            yield timed
    finally:
        for role, m in timed.items():
            m.train(modes[role])


def _forward(model: nn.Module, x: Tensor | Mapping[str, Tensor]) -> Callable[[], Any]:
    """One forward pass of ``model`` on ``x`` (a mapping is passed as keyword arguments)."""
    return (lambda: model(**x)) if isinstance(x, Mapping) else (lambda: model(x))


def _forward_timer(run: Callable[[], Any], threads: int) -> Any:
    """A ``torch.utils.benchmark.Timer`` of ``run()`` on ``threads`` threads: what every latency here is timed with."""
    return _benchmark_timer()("run()", globals={"run": run}, num_threads=threads)


def _to_cpu(example_input: Tensor | Mapping[str, Tensor]) -> Tensor | dict[str, Tensor]:
    if isinstance(example_input, Mapping):
        return {key: value.detach().cpu() for key, value in example_input.items()}
    return example_input.detach().cpu()


def size_on_disk_mb(model: nn.Module) -> float:
    """Size of ``torch.save(model.state_dict())`` in megabytes (10**6 bytes), measured in memory."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / 1e6


def _benchmark_timer() -> type:
    """``torch.utils.benchmark.Timer``, imported without torch's "No CUDA runtime is found, using CUDA_HOME=..."
    notice (logged once, at import, on a machine with a CUDA toolkit and no GPU; it says nothing about timing)."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils.benchmark import Timer
    finally:
        logger.setLevel(level)
    return Timer
