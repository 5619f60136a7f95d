"""Host RSS while training steps read a teacher-output cache for many epochs: memory-mapped reads must not grow it.

    python benchmarks/cache_rss.py                     # 50,000 samples, 100 logits + a 256-wide feature, 20 epochs
    python benchmarks/cache_rss.py --samples 2000 --epochs 3   # a first look

Builds a cache (a small random teacher over random inputs), then reads every sample's rows
each epoch in shuffled batches, as ``DistillationModule`` does, and records the process's
RSS after every epoch. The first epoch maps the files' pages in (up to their size, which
the kernel may drop again); from then on RSS should stay flat. Reported: RSS per epoch,
the files' size, and the growth from the end of epoch 1 to the end of the last.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def measure(samples: int, classes: int, feature_width: int, epochs: int, batch_size: int, seed: int = 0) -> dict[str, Any]:
    from distill.data import TensorClassificationDataset
    from distill.teachers.output_cache import TeacherOutputCache

    torch.manual_seed(seed)
    teacher = nn.Sequential(nn.Linear(16, feature_width), nn.ReLU(), nn.Linear(feature_width, classes)).eval()
    inputs = torch.randn(samples, 16)
    labels = torch.randint(0, classes, (samples,))
    data = DataLoader(TensorClassificationDataset(inputs, labels, with_index=True), batch_size=1000)
    with tempfile.TemporaryDirectory(prefix="distill-cache-rss-") as root:
        cache = TeacherOutputCache.open_or_build(root, {"benchmark": "cache_rss", "samples": samples}, teacher, data, layers=["1"])
        del inputs, labels, data
        file_mb = sum(p.stat().st_size for p in Path(cache.directory).rglob("*.npy")) / 2**20
        rss = [current_rss_mb()]  # before the first epoch
        for _ in range(epochs):
            for index in torch.randperm(samples).split(batch_size):
                logits, features = cache.read(index)
                (logits.sum() + features["1"].sum()).item()  # use the rows, as a step would
            rss.append(current_rss_mb())
    return {
        "samples": samples,
        "classes": classes,
        "feature_width": feature_width,
        "epochs": epochs,
        "batch_size": batch_size,
        "cache_files_mb": file_mb,
        "rss_mb_before": rss[0],
        "rss_mb_after_epoch": rss[1:],
        "growth_after_first_epoch_mb": rss[-1] - rss[1],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--feature-width", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "cache_rss.json")
    args = parser.parse_args(argv)
    report = measure(args.samples, args.classes, args.feature_width, args.epochs, args.batch_size)
    after = ", ".join(f"{value:.0f}" for value in report["rss_mb_after_epoch"])
    print(
        f"cache files {report['cache_files_mb']:.1f} MB; RSS before {report['rss_mb_before']:.0f} MB, "
        f"after each epoch: {after} MB; growth after the first epoch {report['growth_after_first_epoch_mb']:+.1f} MB"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.json}")
    return report


if __name__ == "__main__":
    main()
