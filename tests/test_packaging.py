"""The wheel: every module and every config ships, and the CLI finds its configs when installed."""

from __future__ import annotations

import pytest

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_wheel_ships_code_and_configs_and_the_cli_runs_from_it(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO), "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("distill-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())

    modules = {str(p.relative_to(REPO)) for p in (REPO / "distill").rglob("*.py")}
    configs = {"distill/" + str(p.relative_to(REPO)) for p in (REPO / "conf").rglob("*.yaml")}
    assert modules - names == set(), "modules missing from the wheel: add their package to pyproject.toml"
    assert configs - names == set()

    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    # run from elsewhere, with the unpacked wheel first on the path, as after `pip install .`
    result = subprocess.run(
        [sys.executable, "-m", "distill.run", "--cfg", "job", "trainer.max_epochs=3"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max_epochs: 3" in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import distill.run as r; print(r.config_dir())"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True,
    )
    assert probe.stdout.strip() == str(installed / "distill" / "conf")


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_importing_the_package_does_not_import_hydra():
    code = "import sys, distill, distill.losses, distill.data, distill.models; print('hydra' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
