"""The README's Python examples run as written."""

from __future__ import annotations

import pytest

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_import_example_runs_as_written(tmp_path):
    (example,) = python_blocks("Use it from Python")
    assert "from distill import DistillationModule" in example
    result = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max_epochs=1` reached" in result.stderr + result.stdout


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_own_data_example_runs_as_written(tmp_path, tiny_cli):
    (module,) = python_blocks("Choosing teacher, student, loss and data")
    (tmp_path / "my_data.py").write_text(module)
    command = "python -m distill.run '~data' +data._target_=my_data.TensorFiles +data.root=/path/to/tensors +data.num_classes=5"
    assert command in README.read_text()
    generator = torch.Generator().manual_seed(0)
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        (tmp_path / "tensors" / split).mkdir(parents=True)
        torch.save(torch.randn(n, 3, 16, 16, generator=generator), tmp_path / "tensors" / split / "x.pt")
        torch.save(torch.randint(0, 5, (n,), generator=generator), tmp_path / "tensors" / split / "y.pt")
    args = command.split()[3:]
    args = [a.strip("'").replace("/path/to/tensors", str(tmp_path / "tensors")) for a in args]
    result = tiny_cli(tmp_path, *args, "+data.batch_size=8")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["meta"]["data"] == "TensorFiles"
    assert next(r for r in report["rows"] if r["role"] == "student")["accuracy"] is not None


def test_the_layout_section_names_every_wing_and_command():
    """README "Layout": every package of distill/ and every command module has its line."""
    text = README.read_text()
    start = text.index("## Layout")
    layout = text[start:text.find("\n## ", start + 1)]
    package = README.parent / "distill"
    wings = [f"distill/{p.name}/" for p in sorted(package.iterdir()) if (p / "__init__.py").is_file()]
    commands = [f"distill/{name}.py" for name in ("run", "evaluate", "export", "layers")]
    missing = [entry for entry in (*wings, *commands) if entry not in layout]
    assert missing == [], f"the README's Layout section does not name {', '.join(missing)}"
