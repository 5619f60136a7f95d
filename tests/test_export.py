"""python -m distill.export on a real tiny run: the command line (subprocess) and its job (in-process)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from distill.errors import DistillError
from distill.export import export_saved
from distill.models.exporter import load_exported
from distill.models import build_model, load_weights
from distill.cli.config_directory import config_dir

CONF = config_dir()
REPO = config_dir().parent  # this checkout: the hint names it when run from elsewhere
ONNX_INSTALLED = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


@pytest.fixture(scope="module")
def tiny_run(tiny_run_files):
    """The session's tiny run (tests/conftest.py), with a test batch and its student."""
    run_cfg = OmegaConf.load(tiny_run_files.dir / ".hydra" / "config.yaml")
    data = instantiate(run_cfg.data)
    return SimpleNamespace(
        **vars(tiny_run_files), batch=next(iter(data.test_dataloader()))[0],
        student=load_weights(build_model("mobilenet_v3_small", 10), tiny_run_files.best).eval(),
    )


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "distill.export", *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def job(*overrides, out_dir):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("export", overrides=list(overrides))
    return export_saved(cfg, list(overrides), out_dir)


def max_difference(run, tiny_run, batch=None):
    x = tiny_run.batch if batch is None else batch
    with torch.no_grad():
        return (run(x) - tiny_run.student(x)).abs().max().item()


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_cli_onnx_matches_the_student_or_says_how_to_install(tiny_run, tmp_path):
    out = tmp_path / "student.onnx"
    result = run_cli(f"checkpoint={tiny_run.best}", "format=onnx", f"out={out}", f"hydra.run.dir={tmp_path / 'job'}",
                     cwd=tmp_path)
    if ONNX_INSTALLED:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "max |exported - PyTorch|" in result.stdout and "tolerance 0.0001" in result.stdout
        record = json.loads((tmp_path / "student.onnx.json").read_text())
        assert record["format"] == "onnx" and record["max_abs_diff"] <= record["tolerance"] == 1e-4
        assert record["meta"]["model"] == "mobilenet_v3_small" and record["input_shape"] == [64, 3, 8, 8]
        run = load_exported(out, "onnx")
        assert max_difference(run, tiny_run) <= 1e-4
        assert max_difference(run, tiny_run, tiny_run.batch[:5]) <= 1e-4  # any batch size
    else:
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: format=onnx needs the onnx and onnxruntime")
        assert f'pip install -e "{REPO}[export]"' in result.stderr  # run from elsewhere than this checkout
        assert not out.exists()


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_cli_error_is_one_clear_line(tmp_path):
    result = run_cli(f"checkpoint={tmp_path / 'missing.ckpt'}", f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [result.stderr.strip().splitlines()[-1]]
    assert "checkpoint not found" in errors[0]


@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:FutureWarning")
def test_torchscript_export_of_the_run_matches_the_student(tiny_run, tmp_path):
    result = job(f"checkpoint={tiny_run.best}", "format=torchscript", out_dir=tmp_path)
    path = tmp_path / "mobilenet_v3_small.torchscript.pt"
    assert result["path"] == str(path) and result["max_abs_diff"] <= result["tolerance"] == 1e-5
    loaded = torch.jit.load(str(path))
    assert max_difference(loaded, tiny_run) <= 1e-5
    assert (tmp_path / "mobilenet_v3_small.torchscript.pt.json").is_file()


def test_state_dict_export_is_the_student_alone(tiny_run, tmp_path):
    result = job(f"checkpoint={tiny_run.best}", "format=state_dict", f"out={tmp_path / 'weights.pt'}", out_dir=tmp_path)
    assert result["max_abs_diff"] <= 1e-5
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert not any(key.startswith(("student.", "loss_terms.", "teacher")) for key in state)
    model = build_model("mobilenet_v3_small", 10)
    model.load_state_dict(state)  # strict: exactly the student's keys
    assert max_difference(model.eval(), tiny_run) == 0


def test_input_size_overrides_and_a_file_outside_a_run(tiny_run, tmp_path):
    loose = tmp_path / "student.pt"
    shutil.copy(tiny_run.dir / "student.pt", loose)
    result = job(f"checkpoint={loose}", "model=mobilenet_v3_small", "image_size=16", "format=state_dict",
                 out_dir=tmp_path / "out")
    assert result["input_shape"] == [64, 3, 16, 16] and result["meta"]["run_dir"] is None
    with pytest.raises(DistillError, match="is not inside a run directory.*give model=NAME"):
        job(f"checkpoint={loose}", out_dir=tmp_path / "out")
    with pytest.raises(DistillError, match="unknown export format 'tflite'"):
        job(f"checkpoint={tiny_run.best}", "format=tflite", out_dir=tmp_path / "out")
