"""Did distillation help? Test accuracy of a student trained alone and with each distill recipe.

    python benchmarks/quality.py                 # MNIST-1D, mnist1d_cnn -> mnist1d_mlp, 3 seeds (the README table)
    python benchmarks/quality.py --quick         # a few minutes: short runs, 2 seeds, for CI

Every run is distill's own API: a DistillationModule on Lightning's Trainer, the same number
of optimizer steps for every recipe, validation every ``--eval-every`` steps, the checkpoint
with the best validation accuracy tested (model selection never looks at the test set).
Recipes with all labels are compared with ``student_alone`` (cross-entropy only), the
label-scarce ones (``--labeled-fraction`` of the labels kept) with ``ce_scarce`` (cross-entropy
on the labelled part), seed by seed: the paired difference, its standard error and whether it
is larger than the noise (|mean| > 2 SE, with at least 2 seeds).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's distill

import lightning as L  # noqa: E402
import torch  # noqa: E402

from distill import DistillationModule  # noqa: E402
from distill.augment import Mixup  # noqa: E402
from distill.data.mnist1d import MNIST1DDataModule, MNIST1DGenerated  # noqa: E402
from distill.data.unlabeled import HiddenLabels  # noqa: E402
from distill.losses import KD, CrossEntropy  # noqa: E402
from distill.models import build_model  # noqa: E402
from distill.supervised import SupervisedModule  # noqa: E402

#: recipe -> (what it is, the recipe it is compared with)
RECIPES = {
    "student_alone": ("cross-entropy on the labels, no teacher", None),
    "kd": ("KD (T=4, 0.9) + CE (0.1) on the training inputs", "student_alone"),
    "kd_mixup": ("KD + CE on mixup views seen by both models", "student_alone"),
    "kd_unlabeled": ("KD + CE, half of each batch fresh unlabelled MNIST-1D signals", "student_alone"),
    "ce_scarce": ("cross-entropy on the labelled part only (label-scarce)", None),
    "kd_scarce": ("KD on all training inputs + CE on the labelled part (label-scarce)", "ce_scarce"),
}


def data(args: argparse.Namespace, recipe: str) -> MNIST1DDataModule:
    options: dict[str, Any] = {}
    if recipe == "kd_unlabeled":
        options = {"unlabeled": MNIST1DGenerated(num_samples=args.pool_size, seed=1), "unlabeled_fraction": 0.5}
    elif recipe.endswith("_scarce"):
        options = {"unlabeled": HiddenLabels(args.labeled_fraction, seed=0)}
    return MNIST1DDataModule(batch_size=args.batch_size, cache_dir=args.cache_dir, **options)


def loss(recipe: str) -> dict[str, Any]:
    if recipe in ("student_alone", "ce_scarce"):
        return {"ce": CrossEntropy()}
    return {"kd": KD(temperature=4.0, weight=0.9), "ce": CrossEntropy(weight=0.1)}


def trainer(args: argparse.Namespace, steps: int, root: Path, callbacks: list[Any]) -> L.Trainer:
    return L.Trainer(
        max_steps=steps, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
        check_val_every_n_epoch=None, val_check_interval=args.eval_every, callbacks=callbacks,
        enable_checkpointing=bool(callbacks), enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, default_root_dir=root,
    )


def optimizer(args: argparse.Namespace) -> Any:
    return functools.partial(torch.optim.AdamW, lr=args.lr, weight_decay=0.0)


def train_teacher(args: argparse.Namespace, root: Path) -> torch.nn.Module:
    if args.teacher_checkpoint:
        teacher = build_model(args.teacher, 10)
        teacher.load_state_dict(torch.load(args.teacher_checkpoint, weights_only=True))
        return teacher
    L.seed_everything(0, workers=True)
    teacher = build_model(args.teacher, 10)
    trainer(args, args.teacher_steps, root / "teacher", []).fit(
        SupervisedModule(teacher, optimizer=optimizer(args)), datamodule=data(args, "student_alone")
    )
    return teacher


def run_recipe(args: argparse.Namespace, recipe: str, seed: int, teacher: torch.nn.Module, root: Path) -> dict[str, Any]:
    started = time.perf_counter()
    L.seed_everything(seed, workers=True)
    student = build_model(args.student, 10)
    augment = Mixup(alpha=1.0, num_classes=10) if recipe == "kd_mixup" else None
    module = DistillationModule(student, teacher, loss(recipe), optimizer=optimizer(args), batch_augment=augment)
    best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=root / f"{recipe}-{seed}", monitor="val/acc", mode="max", save_top_k=1, filename="best"
    )
    fit = trainer(args, args.steps, root, [best])
    datamodule = data(args, recipe)
    fit.fit(module, datamodule=datamodule)
    result = fit.test(module, datamodule=datamodule, ckpt_path=best.best_model_path, verbose=False)[0]
    return {
        "recipe": recipe, "seed": seed, "test_accuracy": result["test/acc"],
        "teacher_test_accuracy": result["test/teacher_acc"], "best_val_accuracy": float(best.best_model_score),
        "steps": fit.global_step, "seconds": time.perf_counter() - started,
    }


def paired(values: list[float], baseline: list[float]) -> dict[str, Any]:
    """Mean and standard error of the seed-by-seed differences, and whether the mean exceeds 2 SE."""
    diffs = [a - b for a, b in zip(values, baseline)]
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) >= 2 else float("nan")
    return {
        "mean": mean, "se": se, "t": mean / se if se and math.isfinite(se) else float("nan"),
        "beyond_noise": bool(len(diffs) >= 2 and se > 0 and abs(mean) > 2 * se) or bool(len(diffs) >= 2 and se == 0 and mean != 0),
    }


def summarise(runs: list[dict[str, Any]], recipes: list[str]) -> dict[str, Any]:
    by_recipe = {r: sorted((x for x in runs if x["recipe"] == r), key=lambda x: x["seed"]) for r in recipes}
    summary = {}
    for recipe, rows in by_recipe.items():
        accs = [x["test_accuracy"] for x in rows]
        entry = {
            "what": RECIPES[recipe][0], "seeds": [x["seed"] for x in rows], "test_accuracy": accs,
            "mean": statistics.fmean(accs), "std": statistics.stdev(accs) if len(accs) >= 2 else 0.0,
        }
        against = RECIPES[recipe][1]
        if against in by_recipe:
            entry["compared_with"] = against
            entry["paired_difference"] = paired(accs, [x["test_accuracy"] for x in by_recipe[against]])
        summary[recipe] = entry
    return summary


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"{meta['student']} student, {meta['teacher']} teacher (test {meta['teacher_test_accuracy']:.1%}) on {meta['data']}, "
        f"{meta['steps']} steps of batch {meta['batch_size']} per run, seeds {meta['seeds']}; test accuracy at the "
        "best-validation checkpoint, mean ± std; difference to the compared recipe paired by seed, ± its SE.",
        "",
        "| recipe | what | test accuracy | difference | beyond noise (>2 SE) |",
        "|---|---|---|---|---|",
    ]
    for recipe, entry in summary.items():
        diff = entry.get("paired_difference")
        cell = f"{diff['mean'] * 100:+.1f} ± {diff['se'] * 100:.1f} vs {entry['compared_with']}" if diff else ""
        noise = ("yes" if diff["beyond_noise"] else "no") if diff else ""
        lines.append(f"| `{recipe}` | {entry['what']} | {entry['mean']:.1%} ± {entry['std']:.1%} | {cell} | {noise} |")
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="mnist1d_cnn")
    parser.add_argument("--student", default="mnist1d_mlp")
    parser.add_argument("--teacher-checkpoint", default=None, help="a state_dict of the teacher (else trained first)")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=6000, help="optimizer steps per student run (all recipes)")
    parser.add_argument("--teacher-steps", type=int, default=8000)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--labeled-fraction", type=float, default=0.1)
    parser.add_argument("--pool-size", type=int, default=20000)
    parser.add_argument("--cache-dir", default=str(Path(os.environ.get("DISTILL_CACHE_DIR", "~/.cache/distill")).expanduser()))
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/quality[_quick].json)")
    parser.add_argument("--quick", action="store_true", help="short runs and 2 seeds, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.teacher_steps, args.eval_every, args.pool_size = [0, 1], 400, 1000, 100, 5000
    args.out = Path(args.out or HERE / "results" / ("quality_quick.json" if args.quick else "quality.json"))
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        teacher = train_teacher(args, root)
        runs = []
        for seed in args.seeds:
            for recipe in args.recipes:
                runs.append(run_recipe(args, recipe, seed, teacher, root))
                print(json.dumps(runs[-1]), flush=True)
    summary = summarise(runs, args.recipes)
    meta = {
        "command": "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": "mnist1d", "teacher": args.teacher, "student": args.student, "seeds": args.seeds,
        "steps": args.steps, "teacher_steps": args.teacher_steps, "batch_size": args.batch_size, "lr": args.lr,
        "labeled_fraction": args.labeled_fraction, "pool_size": args.pool_size,
        "teacher_test_accuracy": runs[0]["teacher_test_accuracy"], "seconds": time.perf_counter() - started,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    result = {"meta": meta, "summary": summary, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(summary, meta)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
