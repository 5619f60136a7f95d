"""cProfile of one contender's epoch on the small pair: where a training step's time goes.

    python benchmarks/profile_step.py                       # distill, 10 warm-up + 50 steps
    python benchmarks/profile_step.py --contender minimal_lightning --steps 200 --top 30
    python benchmarks/profile_step.py --per-step --steps 500 [--contender minimal_lightning]
                                                            # ms per step of the step's parts, side by side

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


#: the parts of a training step that --per-step shows (Lightning's loop, the optimizer, logging, the
#: batch fetch, the callbacks, backward; distill's models, terms and checks; the minimal module's loss)
PARTS = ("training_epoch_loop.py:274(advance)", "optimizer.py:85(step)", "automatic.py:307(_training_step)",
         "module.py:386(log)", "strategy.py:192(backward)", "fetchers.py:56(__next__)", "call.py:203(_call_callback_hooks)",
         "(_run_models)", "(_loss_terms)", "(hand_loss)", "live_teacher.py:47(outputs)", "non_finite.py:34(update)",
         "rich_progress.py:586(on_train_batch_end)", "(on_before_optimizer_step)")


def per_step(stats: pstats.Stats, steps: int) -> list[str]:
    """The cumulative time of each of :data:`PARTS` per training step, largest first."""
    rows = []
    for (file, line, func), (_, calls, _, cumulative, _) in stats.stats.items():
        key = f"{file.split('site-packages/')[-1]}:{line}({func})"
        if any(part in key for part in PARTS) and calls >= steps:
            rows.append((cumulative, calls, key))
    return [f"{1000 * c / steps:7.3f} ms/step {n:6d} calls  {k}" for c, n, k in sorted(rows, reverse=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contender", default="distill")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--per-step", action="store_true", help="ms per step of the step's parts (imports excluded)")
    args = parser.parse_args(argv)
    settings = Settings(**{**SMALL_PAIR, "warmup": args.warmup, "steps": args.steps, "threads": args.threads})
    if args.per_step:
        import lightning  # noqa: F401 - imported before the profile starts, so it is not counted
        import distill.module  # noqa: F401

        stats = profile(args.contender, settings)
        print("\n".join(per_step(stats, args.warmup + args.steps)))
        return
    stats = profile(args.contender, settings)
    stats.sort_stats("cumulative").print_stats(args.top)
    print("-- distill's own functions --")
    stats.print_stats(r"distill/(?!\.venv)", args.top)


if __name__ == "__main__":
    main()
