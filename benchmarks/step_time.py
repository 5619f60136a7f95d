"""Seconds per KD training step: distill against a plain PyTorch loop, cached teacher outputs and torchdistill.

    python benchmarks/step_time.py            # 5 repetitions x 20 timed steps
    python benchmarks/step_time.py --quick    # under two minutes
    python benchmarks/step_time.py --extras   # also channels_last, compile and bf16-mixed
    python benchmarks/step_time.py --pair small   # the MNIST-1D-sized pair of small_pair.py (Adam, batch 100)

Each contender x repetition runs in a fresh subprocess (so that peak RSS is its
own), in an order rotated from one repetition to the next. The contenders are
in ``step_time_contenders.py``; the README's "Performance" section explains them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

STARTED = time.perf_counter()  # before torch is imported: a contender's setup_s counts its imports
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's distill, and the contenders next to this file

from small_pair import SIGNAL_LENGTH
from step_time_contenders import EXTRAS, MAIN, NEEDS_CACHE, Settings

RESULT_MARKER = "STEP_TIME_RESULT "

#: (numerator, denominator, what is compared, target): the acceptance ratios (issue 16), by pair
TARGETS = [
    ("distill", "hand", "seconds_per_step", 1.02),
    ("distill", "minimal_lightning", "seconds_per_step", 1.05),
    ("distill_cached", "student_only", "seconds_per_step", 1.05),
    ("distill", "torchdistill", "seconds_per_step", 1.0),
    ("distill", "hand", "peak_rss_mb", 1.1),
]
#: on the small pair Lightning's own per-step cost dominates: distill is held to the minimal
#: LightningModule, and its ratio to the bare loop is reported without a target
SMALL_PAIR_TARGETS = [
    ("distill", "minimal_lightning", "seconds_per_step", 1.05),
    ("distill", "hand", "seconds_per_step", None),
    ("minimal_lightning", "hand", "seconds_per_step", None),
    ("distill_cached", "student_only", "seconds_per_step", None),
    ("distill", "hand", "peak_rss_mb", 1.1),
]
#: what ``--pair small`` sets (the other settings keep their defaults)
SMALL_PAIR = {"teacher": "cnn1d", "student": "mlp", "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}
#: speed options, compared with plain distill (below 1 means the option helps)
OPTION_RATIOS = [(name, "distill", "seconds_per_step") for name in EXTRAS]


# -- running -------------------------------------------------------------------------
def run_child(name: str, settings: Settings, cache_dir: str | None, timeout: float = 900) -> dict[str, Any]:
    """Run one contender in a fresh interpreter and return its result dict."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", name,
        "--settings", json.dumps(dataclasses.asdict(settings)),
    ]
    if cache_dir is not None:
        command += ["--cache-dir", cache_dir]
    env = {**os.environ, "OMP_NUM_THREADS": str(settings.threads)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    raise RuntimeError(f"contender {name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")


def schedule(contenders: list[str], reps: int) -> list[tuple[int, str]]:
    """``(repetition, contender)`` pairs: every repetition runs all contenders, each starting one further along."""
    order = []
    for rep in range(reps):
        shift = rep % len(contenders)
        order += [(rep, name) for name in contenders[shift:] + contenders[:shift]]
    return order


def benchmark(contenders: list[str], settings: Settings, reps: int, log=print) -> dict[str, Any]:
    """Run every contender ``reps`` times, interleaved; return the runs and their summary."""
    started = time.perf_counter()
    cache_dir = tempfile.mkdtemp(prefix="distill-bench-cache-")
    try:
        prepare = None
        if NEEDS_CACHE & set(contenders):
            prepare = run_child("prepare_cache", settings, cache_dir)
            log(f"teacher-output cache built in {prepare['seconds']:.1f} s")
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        for rep, name in schedule(contenders, reps):
            result = run_child(name, settings, cache_dir)
            runs[name].append(result)
            log(f"rep {rep + 1}/{reps} {name:<22} {result['seconds_per_step']:.4f} s/step  "
                f"peak RSS {result['peak_rss_mb']:.0f} MB")
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    summary = {name: summarize(results) for name, results in runs.items()}
    return {
        "settings": dataclasses.asdict(settings),
        "reps": reps,
        "machine": machine(),
        "wall_seconds": time.perf_counter() - started,
        "prepare_cache": prepare,
        "summary": summary,
        "ratios": ratios(summary, SMALL_PAIR_TARGETS if is_small_pair(settings) else TARGETS, runs),
        "option_ratios": ratios(summary, [(a, b, key, None) for a, b, key in OPTION_RATIOS], runs),
        "runs": runs,
    }


def is_small_pair(settings: Settings) -> bool:
    return settings.input_shape == (SIGNAL_LENGTH,)


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
    }


# -- statistics ------------------------------------------------------------------------
def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min, max (and the interquartile range with 4 or more runs) of the per-run numbers."""
    per_step = [r["seconds_per_step"] for r in results]
    summary = {
        "seconds_per_step": statistics.median(per_step),
        "seconds_per_step_min": min(per_step),
        "seconds_per_step_max": max(per_step),
        "seconds_per_step_iqr": None,
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results),
        "peak_rss_steps_mb": statistics.median(r["peak_rss_steps_mb"] for r in results),
        "rss_before_steps_mb": statistics.median(r["rss_before_steps_mb"] for r in results),
        "warmup_s": statistics.median(r["warmup_s"] for r in results),
        "epoch_end_s": statistics.median(r["epoch_end_s"] for r in results),
        "runs": len(results),
    }
    if len(per_step) >= 4:
        quartiles = statistics.quantiles(per_step, n=4)
        summary["seconds_per_step_iqr"] = quartiles[2] - quartiles[0]
    return summary


def ratios(
    summary: dict[str, Any],
    pairs: list[tuple[str, str, str, float | None]],
    runs: dict[str, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """``numerator / denominator`` of the medians, with the target and whether it is met, for the pairs measured.

    With ``runs``, also the median of the per-repetition ratios ("paired") and their min and
    max (the spread across repetitions): the two runs of one repetition are close in time, so
    when the machine's load drifts during the benchmark this ratio is the steadier one, and
    the target is checked on it.
    """
    rows = []
    for numerator, denominator, key, target in pairs:
        if numerator not in summary or denominator not in summary:
            continue
        value = summary[numerator][key] / summary[denominator][key]
        paired = paired_min = paired_max = None
        if runs is not None:
            per_rep = [a[key] / b[key] for a, b in zip(runs[numerator], runs[denominator])]
            paired, paired_min, paired_max = statistics.median(per_rep), min(per_rep), max(per_rep)
        rows.append({
            "name": f"{numerator}/{denominator}" + ("" if key == "seconds_per_step" else f" ({key})"),
            "numerator": numerator,
            "denominator": denominator,
            "metric": key,
            "value": value,
            "paired": paired,
            "paired_min": paired_min,
            "paired_max": paired_max,
            "target": target,
            "passed": None if target is None else (value if paired is None else paired) <= target,
        })
    return rows


# -- output ----------------------------------------------------------------------------
def table(report: dict[str, Any]) -> str:
    """The summary as Markdown: one row per contender, then the ratios."""
    lines = [
        "| contender | s/step (median) | min-max | IQR | peak RSS MB | RSS before steps MB | warm-up s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in report["summary"].items():
        iqr = "-" if s["seconds_per_step_iqr"] is None else f"{s['seconds_per_step_iqr']:.4f}"
        lines.append(
            f"| {name} | {s['seconds_per_step']:.4f} | {s['seconds_per_step_min']:.4f}-{s['seconds_per_step_max']:.4f} "
            f"| {iqr} | {s['peak_rss_mb']:.0f} | {s['rss_before_steps_mb']:.0f} | {s['warmup_s']:.2f} |"
        )
    lines += ["", "| ratio | of medians | paired | paired min-max | target | |", "|---|---|---|---|---|---|"]
    for row in report["ratios"] + report["option_ratios"]:
        target = "-" if row["target"] is None else f"<= {row['target']:.2f}"
        verdict = "" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")
        paired = "-" if row.get("paired") is None else f"{row['paired']:.3f}"
        spread = "-" if row.get("paired_min") is None else f"{row['paired_min']:.3f}-{row['paired_max']:.3f}"
        lines.append(f"| {row['name']} | {row['value']:.3f} | {paired} | {spread} | {target} | {verdict} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions x 5 timed steps (under two minutes)")
    parser.add_argument(
        "--pair", choices=["torchvision", "small"], default="torchvision",
        help="small: the 1-D CNN teacher and MLP student of small_pair.py, Adam, batch 100, 200 timed steps",
    )
    parser.add_argument("--extras", action="store_true", help="also distill with channels_last, compile, bf16-mixed")
    parser.add_argument("--contenders", nargs="+", help="run only these (default: all main contenders)")
    parser.add_argument("--reps", type=int, help="repetitions (default 5, --quick 2)")
    parser.add_argument("--steps", type=int, help="timed steps per run (default 20, --quick 5)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3, --quick 2)")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 8), help="torch.set_num_threads")
    parser.add_argument("--batch-size", type=int, help="default 64 (the small pair: 100)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--teacher", help="default resnet50 (the small pair: cnn1d)")
    parser.add_argument("--student", help="default resnet18 (the small pair: mlp)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", type=Path, help="where to write results (default results/step_time.json, the small pair: step_time_small.json)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    quick, small = args.quick, args.pair == "small"
    pair = SMALL_PAIR if small else {}
    given = {"teacher": args.teacher, "student": args.student, "batch_size": args.batch_size}
    # a small-pair step takes milliseconds: many more of them make a steady mean
    default_warmup, default_steps = ((5, 30) if quick else (10, 200)) if small else ((2, 5) if quick else (3, 20))
    return Settings(**{
        **pair,
        **{key: value for key, value in given.items() if value is not None},
        "image_size": args.image_size,
        "warmup": args.warmup or default_warmup,
        "steps": args.steps or default_steps,
        "threads": args.threads,
        "seed": args.seed,
    })


def child_main(args: argparse.Namespace) -> None:
    from step_time_contenders import prepare_cache, run_contender

    settings = Settings(**json.loads(args.settings))
    if args.child == "prepare_cache":
        result = prepare_cache(settings, args.cache_dir)
    else:
        result = run_contender(args.child, settings, args.cache_dir, born=STARTED)
    print(RESULT_MARKER + json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return {}
    contenders = args.contenders or (MAIN + EXTRAS if args.extras else MAIN)
    reps = args.reps or (2 if args.quick else 5)
    settings = settings_from(args)
    print(f"{settings}\n{reps} repetitions of {', '.join(contenders)}", flush=True)
    report = benchmark(contenders, settings, reps, log=lambda line: print(line, flush=True))
    print("\n" + table(report))
    print(f"\n{report['wall_seconds']:.0f} s in all; load average {report['machine']['load_average']}")
    path = args.json or HERE / "results" / ("step_time_small.json" if args.pair == "small" else "step_time.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {path}")
    return report


if __name__ == "__main__":
    main()
