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


def copied_run(tiny_run, tmp_path):
    """A copy of the session's run directory, so that an export into it leaves the shared one as it is."""
    shutil.copytree(tiny_run.dir, tmp_path / "run", ignore=shutil.ignore_patterns("exports"))
    return tmp_path / "run"


@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:FutureWarning")
def test_torchscript_export_goes_into_the_run_and_matches_the_student(tiny_run, tmp_path):
    run = copied_run(tiny_run, tmp_path)
    result = job(f"checkpoint={run / 'checkpoints' / 'best.ckpt'}", "format=torchscript", out_dir=tmp_path / "job")
    path = run / "exports" / "best-mobilenet_v3_small.torchscript.pt"  # beside the run, named after the checkpoint
    assert result["path"] == str(path) and result["max_abs_diff"] <= result["tolerance"] == 1e-5
    loaded = torch.jit.load(str(path))
    assert max_difference(loaded, tiny_run) <= 1e-5
    assert (run / "exports" / "best-mobilenet_v3_small.torchscript.pt.json").is_file() and not (tmp_path / "job").exists()


def test_torch_export_is_the_default_format_next_to_torchscript_and_describes_its_input(tiny_run, tmp_path):
    run = copied_run(tiny_run, tmp_path)
    result = job(f"checkpoint={run / 'checkpoints' / 'best.ckpt'}", "format=torch_export", out_dir=tmp_path / "job")
    path = run / "exports" / "best-mobilenet_v3_small.pt2"
    assert result["path"] == str(path) and result["max_abs_diff"] <= 1e-5 and result["batch_sizes"] == [64, 1]
    program = torch.export.load(str(path)).module()
    assert max_difference(program, tiny_run) <= 1e-5
    assert max_difference(program, tiny_run, tiny_run.batch[:7]) <= 1e-5  # the batch dimension is dynamic
    meta = json.loads((run / "exports" / "best-mobilenet_v3_small.pt2.json").read_text())["meta"]
    summary = json.loads((run / "summary.json").read_text())
    assert meta["teacher"] == {key: summary["teacher"][key] for key in ("name", "sha256", "source")}
    described = meta["input"]
    assert described["image_size"] == 8 and described["channels"] == 3 and described["class_names"] == list("0123456789")
    assert described["resize"] == {"size": [8, 8], "mode": "bilinear", "align_corners": False}
    # the recorded mean and std are those of the training split's raw pixels, worked out here from the data itself
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train, _ = train_test_split(range(len(digits.target)), test_size=0.3, stratify=digits.target, random_state=0)
    pixels = torch.tensor(digits.images[sorted(train)], dtype=torch.float32) / 16
    assert described["scale"] == 1 / 16
    assert described["mean"][0] == pytest.approx(pixels.mean().item(), rel=1e-6)
    assert described["std"][0] == pytest.approx(pixels.std().item(), rel=1e-6)


@pytest.mark.slow  # a real command line (over 3 s on 2 cores)
def test_the_readme_load_and_predict_snippet_runs_on_an_export(tiny_run, tmp_path):
    """The README's snippet, run as written on this run's export, predicts what the student predicts on the
    data module's own inputs: its preprocessing (from the export's record) is the run's."""
    import re

    from distill.data import DigitsDataModule

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Using an export in another program"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    run = copied_run(tiny_run, tmp_path)
    exported = run_cli(f"checkpoint={run / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    placeholder = "outputs/<date>/<time>/exports/best-resnet18.pt2"
    assert placeholder in snippet
    snippet = snippet.replace(placeholder, str(run / "exports" / "best-mobilenet_v3_small.pt2"))
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    data = DigitsDataModule(image_size=8, batch_size=64)
    data.setup()
    x = torch.cat([data.splits[split].inputs for split in ("train", "val", "test")])
    y = torch.cat([data.splits[split].labels for split in ("train", "val", "test")])
    with torch.no_grad():
        predicted = tiny_run.student(x).argmax(1)
    assert counts == {"correct": int((predicted == y).sum()),
                      "per_class": torch.bincount(predicted, minlength=10).tolist()}


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
