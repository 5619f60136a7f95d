"""cProfile of one contender's epoch on the small pair: where a training step's time goes.

    python benchmarks/profile_step.py                       # distill, 10 warm-up + 50 steps
    python benchmarks/profile_step.py --contender minimal_lightning --steps 200 --top 30

Prints the functions with the most cumulative time, and those of distill itself apart.
A profile slows every Python call down, so read it for what costs, not for how much.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from step_time import SMALL_PAIR  # noqa: E402
from step_time_contenders import Settings, run_contender  # noqa: E402


def profile(contender: str, settings: Settings) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    run_contender(contender, settings)
    profiler.disable()
    return pstats.Stats(profiler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contender", default="distill")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    settings = Settings(**{**SMALL_PAIR, "warmup": args.warmup, "steps": args.steps, "threads": args.threads})
    stats = profile(args.contender, settings)
    stats.sort_stats("cumulative").print_stats(args.top)
    print("-- distill's own functions --")
    stats.print_stats(r"distill/(?!\.venv)", args.top)


if __name__ == "__main__":
    main()
