"""Seconds per training epoch of batches: distill's DataLoader path against data.in_memory=true, on the CPU.

    python benchmarks/loader_time.py                 # digits (1,257 training images, 3x32x32), 5 repetitions
    python benchmarks/loader_time.py --cifar 50000   # also CIFAR-shaped uint8 images with crop+flip augmentation

Only the loading is timed (iterating one epoch, no model). Each repetition runs both
paths back to back, alternating which goes first; the ratio is in-memory / DataLoader.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import torch  # noqa: E402

from distill.data import DigitsDataModule  # noqa: E402
from distill.data.base import ClassificationDataModule  # noqa: E402


def epoch_seconds(loader: Any) -> float:
    started = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - started


def compare(make_module, reps: int) -> dict[str, Any]:
    """Median epoch seconds of both paths and the paired ratio (median and spread over repetitions)."""
    modules = {"dataloader": make_module(False), "in_memory": make_module(True)}
    loaders = {name: module.train_dataloader() for name, module in modules.items()}
    for loader in loaders.values():
        epoch_seconds(loader)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in loaders}
    for rep in range(reps):
        for name in (list(loaders) if rep % 2 == 0 else list(loaders)[::-1]):
            torch.manual_seed(rep)
            times[name].append(epoch_seconds(loaders[name]))
    per_rep = [m / d for m, d in zip(times["in_memory"], times["dataloader"])]
    return {
        "batches": len(loaders["dataloader"]),
        "epoch_s": {name: statistics.median(t) for name, t in times.items()},
        "ratio_in_memory_to_dataloader": statistics.median(per_rep),
        "ratio_min": min(per_rep),
        "ratio_max": max(per_rep),
        "times": times,
    }


class SyntheticCIFAR(ClassificationDataModule):
    """CIFAR's training transforms (``CIFARDataModule``'s) on random uint8 images: no files needed."""

    name = "synthetic_cifar"
    num_classes = 10
    augment = True

    def __init__(self, samples: int, batch_size: int, in_memory: bool) -> None:
        from torchvision.transforms import v2

        from distill.data.batch_crop_flip import BatchRandomCropFlip

        super().__init__(batch_size, 0, True, False, in_memory)
        self.samples = samples
        to_input = [v2.ToDtype(torch.float32, scale=True), v2.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))]
        self.eval_transform = v2.Compose(to_input)
        self.train_transform = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), *to_input])
        self.batch_train_transform = v2.Compose([BatchRandomCropFlip(padding=4), *to_input])

    def load_splits(self) -> dict[str, Any]:
        from distill.data import TensorClassificationDataset

        generator = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (self.samples, 3, 32, 32), dtype=torch.uint8, generator=generator)
        y = torch.randint(0, 10, (self.samples,), generator=generator)
        data = TensorClassificationDataset(x, y)
        return {"train": data, "val": data, "test": data}

    def data_fingerprint(self) -> dict[str, Any]:
        return {"samples": self.samples}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cifar", type=int, default=0, help="also this many CIFAR-shaped images (0: skip)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "loader_time.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {
        "digits": compare(lambda m: DigitsDataModule(batch_size=args.batch_size, in_memory=m), args.reps),
    }
    if args.cifar:
        report["cifar_augmented"] = compare(lambda m: SyntheticCIFAR(args.cifar, args.batch_size, m), args.reps)
    for name, row in report.items():
        print(
            f"{name}: {row['batches']} batches, DataLoader {row['epoch_s']['dataloader']:.4f} s/epoch, "
            f"in-memory {row['epoch_s']['in_memory']:.4f} s/epoch, ratio {row['ratio_in_memory_to_dataloader']:.3f} "
            f"({row['ratio_min']:.3f}-{row['ratio_max']:.3f})"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"reps": args.reps, "batch_size": args.batch_size, **report}, indent=2) + "\n")
    print(f"results written to {args.json}")
    return report


if __name__ == "__main__":
    main()
