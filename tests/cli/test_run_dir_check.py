"""The run directory: an empty one is refused, and nothing is created from a string Hydra would read otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from distill.cli.run_dir_check import check_run_dirs
from distill.errors import DistillError


@pytest.mark.parametrize("arg", ["hydra.run.dir=", "hydra.run.dir=''", 'hydra.run.dir=""', "hydra.run.dir=' '",
                                 "hydra.sweep.dir=", "hydra.run.dir=null", "+hydra.run.dir="])
def test_an_empty_run_dir_is_refused_and_nothing_is_written(arg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DistillError, match=r"is empty \(an unset shell variable\?\): the run would be written into the launch"):
        check_run_dirs([arg])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arg, made", [
    ("hydra.run.dir='runs/a b'", "runs/a b"),
    ('hydra.run.dir="runs/c"', "runs/c"),
    ("hydra.run.dir=runs/plain", "runs/plain"),
    ("hydra.sweep.dir='sweeps/x'", "sweeps/x"),
])
def test_a_quoted_run_dir_is_made_as_hydra_reads_it(arg, made, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_run_dirs([arg])
    assert (tmp_path / made).is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [made.split("/")[0]]  # no tree named after a quote


def test_an_interpolated_or_swept_run_dir_is_left_to_hydra(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_run_dirs(["hydra.run.dir=outputs/${now:%H}", "hydra.sweep.dir=a,b"])
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_run_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DistillError, match=f"cannot write the run's outputs to {blocker}/run"):
        check_run_dirs([f"hydra.run.dir={blocker}/run"])


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_the_command_line_refuses_an_empty_run_dir_before_writing_anything(tmp_path):
    earlier = {"summary.json": "earlier", "student.pt": "earlier weights"}
    for name, text in earlier.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run([sys.executable, "-m", "distill.run", "hydra.run.dir="], cwd=tmp_path,
                            env={**os.environ}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "hydra.run.dir is empty" in errors[0] and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(earlier)
    assert all((tmp_path / n).read_text() == t for n, t in earlier.items())
