"""benchmarks/cache_rss.py on a tiny cache: it builds, reads every epoch, and reports what it measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import cache_rss

pytestmark = pytest.mark.slow  # real training runs (minutes on 2 cores): `pytest -m slow`, which CI runs


def test_cache_rss_mechanics(tmp_path):
    out = tmp_path / "rss.json"
    report = cache_rss.main(["--samples", "300", "--classes", "10", "--feature-width", "8", "--epochs", "3", "--json", str(out)])
    assert json.loads(out.read_text()) == report
    assert len(report["rss_mb_after_epoch"]) == 3
    assert report["growth_after_first_epoch_mb"] == pytest.approx(report["rss_mb_after_epoch"][-1] - report["rss_mb_after_epoch"][0])
    # float32 logits (300 x 10) and features (300 x 8), plus the .npy headers
    assert 300 * 18 * 4 / 2**20 <= report["cache_files_mb"] < 300 * 18 * 4 / 2**20 + 0.01
    assert report["rss_mb_before"] > 0
