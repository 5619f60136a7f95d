"""benchmarks/lm_cache.py on a tiny setting: bytes per token from the files, both epochs timed; no speed is asserted."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lm_cache.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("lm_cache_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_quick_run_reports_bytes_per_token_and_the_cached_speedup_with_its_spread(capsys):
    result = load_benchmark().main(["--quick", "--repeats", "2"])
    printed = capsys.readouterr().out
    assert json.loads(printed.strip().splitlines()[-1])["tokens"] == result["tokens"] > 0
    # k = 8 ids of 9 bits (vocabulary 300) = 9 bytes, 8 float16 = 16, a float32 tail = 4; files add headers
    assert result["payload_bytes_per_token"] == 29 and 29 < result["bytes_per_token"] < 29 + 5 * 128 / result["tokens"] + 8
    assert result["dense_bf16_bytes_per_token"] == 600
    assert len(result["epoch_s"]["live"]) == len(result["epoch_s"]["cached"]) == 2
    assert result["speedup"] == pytest.approx([a / b for a, b in zip(result["epoch_s"]["live"], result["epoch_s"]["cached"])])
    assert result["speedup_spread"] == [min(result["speedup"]), max(result["speedup"])]
    assert "bytes/token on disk" in printed and "speed-up (live / cached)" in printed
