"""The quick-start notebook runs top to bottom."""

from __future__ import annotations

import pytest

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_quickstart_runs_top_to_bottom(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "teacher accuracy" in text and "student accuracy" in text
    shown = "".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs) + text
    assert "Distillation report" in shown
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the reliability diagram is shown
    assert (tmp_path / "quickstart-report" / "evaluation.md").is_file()  # distill.report.evaluate, the README's way
    # distill's own Lightning noise stays out of the cells (its module's batch hook, Lightning's LeafSpec notice)
    noise = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "on_before_batch_transfer" not in noise and "LeafSpec" not in noise
    assert "GPU available" not in noise and "litlogger" not in noise and "Seed set" not in noise
    assert "No CUDA runtime" not in noise  # torch.utils.benchmark's import notice (distill.report.speed)
