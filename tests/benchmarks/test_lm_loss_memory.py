"""benchmarks/lm_loss_memory.py on tiny sizes: the three contenders compute the same loss; no memory is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lm_loss_memory.py"


@pytest.mark.slow  # six fresh processes (over 3 s on 2 cores)
def test_quick_run_measures_each_contender_in_its_own_process_with_the_same_loss(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--repeats", "2"], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    rows = data["results"][0]["rows"]
    assert set(rows) == {"hand", "distill_unchunked", "distill_chunked"}
    losses = [row["loss"] for row in rows.values()]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4) and losses[2] == pytest.approx(losses[0], rel=1e-4)
    for row in rows.values():
        assert row["min_mib"] <= row["median_mib"] <= row["max_mib"]
        assert row["ratio_to_hand"] == pytest.approx(row["median_mib"] / rows["hand"]["median_mib"])
    assert "distill_chunked" in result.stdout and "x hand" in result.stdout
