"""The README's "Language models" Python example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_language_model_example_runs_as_written(tmp_path):
    text = README.read_text()
    start = text.index("## Language models\n")
    (example,) = re.findall(r"```python\n(.*?)```", text[start:text.find("\n## ", start + 1)], re.S)
    result = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max_epochs=1` reached" in result.stderr + result.stdout
    assert re.search(r"tensor\(0\.\d+\)|tensor\(1\.\)", result.stdout)
